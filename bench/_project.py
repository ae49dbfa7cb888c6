"""The trained project the benchmarks measure, and the timed `dvc repro` that trains it.

`make_copy` copies this repository (the files git knows, minus stage outputs) into a fresh git
repository; `timed_repro` runs `make repro` there (the config stage, then `dvc repro`) and reads
each stage's wall time from DVC's output. Benchmarks that need models call `trained_project()`:
$BENCH_PROJECT when set (`BENCH_PROJECT=.` measures this working tree's own outputs), else a copy
trained once under bench/out/ — the tiny profile when $BENCH_QUICK is set.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
RUNNING = re.compile(r"Running stage '([^']+)'")
LOCK_UPDATE = re.compile(r"(Updating|Generating) lock file")
OLD_SERVER = "cc4822b"  # the last commit of the hand-written server, before the FastAPI rebuild


def quick() -> bool:
    """Quick mode ($BENCH_QUICK): shrunken sizes that prove a benchmark works, not its figures."""
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def env(project: Path) -> dict[str, str]:
    """The venv first on PATH, the project importable, its own MLflow database, no downloads."""
    out = dict(os.environ)
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out.get('PATH', '')}"
    out["PYTHONPATH"] = str(project)
    out["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
    out["HF_HUB_OFFLINE"] = "1"
    out["PYTHONHASHSEED"] = "0"
    return out


def project_files(root: Path) -> list[str]:
    """Tracked files and untracked ones git does not ignore, minus dvc.yaml's stage outputs
    (params.yaml excepted: dvc.yaml reads it), so that every stage runs in the copy, and minus
    tests/ (the pipeline needs none of it, and a fixture's dvc.yaml would join the pipeline)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode()
    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    outputs = [
        str(next(iter(entry)) if isinstance(entry, dict) else entry).rstrip("/")
        for stage in stages.values()
        for kind in ("outs", "metrics", "plots")
        for entry in stage.get(kind) or []
    ]
    outputs.remove("params.yaml")
    return sorted(
        f
        for f in set(listed.split("\0"))
        if f
        and (root / f).is_file()
        and not f.startswith("tests/")
        and not any(f == o or f.startswith(f"{o}/") for o in outputs)
    )


def git(cwd: Path, *args: str) -> None:
    ident = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost"}
    ident |= {"GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=os.environ | ident)


def make_copy(dest: Path, profile: str | None, src: Path = ROOT) -> Path:
    """Copy the project into a new git repository at `dest`, with a config profile selected."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in project_files(src):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dest / rel)
    _commit(dest, profile)
    return dest


def _commit(dest: Path, profile: str | None) -> None:
    """Select a config profile and make `dest` a git repository of one commit (DVC needs one)."""
    if profile:
        config = dest / "configs" / "config.yaml"
        text, n = re.subn(r"(?m)^(\s*- profile:)\s*\S+", rf"\1 {profile}", config.read_text())
        if n != 1:
            raise SystemExit(f"{config}: no '- profile:' entry in the defaults list")
        config.write_text(text)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "copy")


def old_project(timeout: float) -> Path | None:
    """The hand-written server's commit (OLD_SERVER) with its own tiny-profile export, made once
    under bench/out/ (`git archive`, so the repository's worktree list is left alone); None
    when this clone's history lacks the commit."""
    project = OUT / "old-server"
    if (project / "models" / "export" / "contract.json").is_file():
        return project
    archive = subprocess.run(["git", "archive", OLD_SERVER], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        return None
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(project)], input=archive.stdout, check=True)
    shutil.rmtree(project / "tests")
    _commit(project, "tiny")
    print(f"[bench] training the old server's tiny profile in {project} ...", file=sys.stderr)
    result = timed_repro(project, timeout, "export")  # its `make repro` was plain `dvc repro`
    if result["status"] != "ok":
        raise SystemExit(f"dvc repro in {project} {result['status']}:\n{result.get('log_tail')}")
    return project


def stage_times(lines: list[tuple[float, str]], finished: float) -> dict[str, float]:
    """Seconds per stage from timestamped `dvc repro` output: from "Running stage" to its lock
    file update (the stage's command plus DVC caching its outputs)."""
    times: dict[str, float] = {}
    current: str | None = None
    start = end = 0.0
    for stamp, line in lines:
        match = RUNNING.search(line)
        if match:
            if current:
                times[current] = round(end - start if end > start else stamp - start, 2)
            current, start, end = match.group(1), stamp, 0.0
        elif current and LOCK_UPDATE.search(line):
            end = stamp
    if current:
        times[current] = round((end if end > start else finished) - start, 2)
    return times


def timed_repro(workdir: Path, timeout: float, *args: str) -> dict[str, Any]:
    """`dvc repro [args]` once, its process group killed at `timeout`; stage times included."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", *args],
        cwd=workdir,
        env=env(workdir) | {"PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    fired = threading.Event()

    def kill() -> None:
        fired.set()
        os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    lines: list[tuple[float, str]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - started, line.rstrip("\n")))
        if RUNNING.search(line):
            print(f"[bench]   {line.strip()}", file=sys.stderr, flush=True)
    proc.wait()
    timer.cancel()
    total = time.perf_counter() - started
    status = "timeout" if fired.is_set() else "ok" if proc.returncode == 0 else "failed"
    result: dict[str, Any] = {
        "status": status,
        "wall_s": round(total, 2),
        "stages": stage_times(lines, total),
    }
    if status != "ok":
        result["log_tail"] = "\n".join(line for _, line in lines[-60:])
    return result


def make_repro(workdir: Path, timeout: float) -> dict[str, Any]:
    """`make repro` timed: the config stage alone (dvc.yaml reads params.yaml when it is
    parsed), then the rest of the pipeline."""
    first = timed_repro(workdir, timeout, "--single-item", "config")
    if first["status"] != "ok":
        return first
    rest = timed_repro(workdir, timeout)
    rest["stages"] = first["stages"] | rest["stages"]
    rest["wall_s"] = round(first["wall_s"] + rest["wall_s"], 2)
    return rest


def trained_project(timeout: float = 3600) -> Path:
    """A project with models/export and data/processed (see the module's notes)."""
    given = os.environ.get("BENCH_PROJECT")
    if given:
        project = Path(given).resolve()
        if not (project / "models" / "export" / "contract.json").is_file():
            raise SystemExit(f"BENCH_PROJECT={given}: no models/export/contract.json there")
        return project
    profile = "tiny" if quick() else "default"
    project = OUT / f"project-{profile}"
    if (project / "models" / "export" / "contract.json").is_file():
        return project
    shutil.rmtree(project, ignore_errors=True)
    print(f"[bench] training a {profile}-profile copy in {project} ...", file=sys.stderr)
    make_copy(project, None if profile == "default" else profile)
    result = make_repro(project, timeout)
    if result["status"] != "ok":
        raise SystemExit(f"dvc repro in {project} {result['status']}:\n{result.get('log_tail')}")
    return project
