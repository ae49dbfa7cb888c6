"""`make smoke`: the whole pipeline on the tiny profile in a temporary copy of the project.

The copy is a fresh git repository holding exactly the project's files (tracked, plus untracked
ones git does not ignore), so nothing from the working tree's outputs or caches leaks in. The
end-to-end test uses the same helpers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def dvc_outputs(dvc_yaml: Path) -> list[str]:
    """Every path dvc.yaml declares as a stage output (outs, metrics, plots)."""
    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages", {})
    paths = []
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                paths.append(str(next(iter(entry)) if isinstance(entry, dict) else entry))
    return [p.rstrip("/") for p in paths]


def project_files(root: Path = ROOT) -> list[str]:
    """Files git tracks plus untracked ones it does not ignore, minus stage outputs.

    Outputs are left out so that every stage runs in the copy: a stage run by hand (not through
    DVC) leaves outputs that git does not ignore yet, and DVC refuses to own a path git tracks.
    """
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode()
    outputs = [o for o in dvc_outputs(root / "dvc.yaml") if o != "params.yaml"]
    return sorted(
        f
        for f in set(out.split("\0"))
        if f and (root / f).is_file() and not any(f == o or f.startswith(o + "/") for o in outputs)
    )


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "smoke", "GIT_AUTHOR_EMAIL": "smoke@localhost"}
    env |= {"GIT_COMMITTER_NAME": "smoke", "GIT_COMMITTER_EMAIL": "smoke@localhost"}
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env
    ).stdout


def make_copy(dest: Path, profile: str | None = "tiny", src: Path = ROOT) -> Path:
    """Copy the project into `dest` as a new git repo, selecting a config profile."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in project_files(src):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, target)
    if profile:
        select_profile(dest, profile)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "copy")
    return dest


def select_profile(project: Path, profile: str) -> None:
    """Point the `profile` entry of configs/config.yaml at `profile`."""
    config = project / "configs" / "config.yaml"
    text, n = re.subn(r"(?m)^(\s*- profile:)\s*\S+", rf"\1 {profile}", config.read_text())
    if n != 1:
        raise SystemExit(f"{config}: no '- profile:' entry in the defaults list")
    config.write_text(text)


def pipeline_env(project: Path) -> dict[str, str]:
    """Environment for running the pipeline in a copy: its own MLflow DB, the venv on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONHASHSEED"] = "0"
    # Stages write bytecode beside their code, as on a user's machine (.dvcignore leaves it out).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def dvc(project: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run a DVC command in the copy; returns the completed process (output captured)."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=project,
        env=pipeline_env(project),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def dvc_repro(project: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """`make repro` in the copy: the config stage first (dvc.yaml reads the selected data's path
    from params.yaml), then `dvc repro [args]`; the two outputs joined."""
    if args:
        return dvc(project, "repro", *args, timeout=timeout)
    first = dvc(project, "repro", "--single-item", "config", timeout=timeout)
    if first.returncode != 0:
        return first
    second = dvc(project, "repro", timeout=timeout)
    return subprocess.CompletedProcess(
        second.args, second.returncode, first.stdout + second.stdout, first.stderr + second.stderr
    )


def stages_run(output: str) -> list[str]:
    """Names of the stages DVC actually ran, from its output."""
    return re.findall(r"Running stage '([^']+)'", output)


def main() -> int:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pipeline-smoke-") as tmp:
        project = make_copy(Path(tmp) / "project")
        print(f"smoke: tiny profile in {project}", flush=True)
        result = dvc_repro(project)
        sys.stdout.write(result.stdout[-4000:])
        if result.returncode != 0:
            sys.stderr.write(result.stderr[-4000:])
            print(f"smoke: FAILED after {time.perf_counter() - started:.0f}s", file=sys.stderr)
            return 1
        ran = stages_run(result.stdout)
        again = dvc_repro(project)
        noop = again.returncode == 0 and not stages_run(again.stdout)
        print(f"smoke: ran {', '.join(ran)}; second repro no-op: {noop}")
        print(f"smoke: OK in {time.perf_counter() - started:.0f}s")
        return 0 if noop else 1


if __name__ == "__main__":
    sys.exit(main())
