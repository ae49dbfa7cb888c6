"""`make bench`: run every benchmark in bench/, time a default and a no-op `dvc repro`, and write
bench/out/results.json and bench/RESULTS.md (the table the README shows).

Each benchmark is a script `bench/<name>.py`, listed in BENCHMARKS below with its time limit
(other files in bench/ are helpers), that writes `bench/out/<name>.json`; it runs from the
project root in its own process group and is killed with its children at the limit. A benchmark
that is missing, fails, times out or writes no JSON is reported as such, never dropped. A
benchmark may put its headline figures under a top-level "summary" object; the table shows those
(else its first scalar figures). To add a benchmark, add its name here.

    python bench/run_all.py                    # everything (RESULTS.md lists the time each took)
    python bench/run_all.py --only onnx_vs_native serving_http --skip-dvc
    python bench/run_all.py --only serving_http --profile tiny   # quick: tiny-profile models

`make repro` runs first, timed, in a fresh copy of the project (bench/out/project-<profile>);
the benchmarks that need trained models then measure that copy. With --skip-dvc they use
$BENCH_PROJECT, else a copy trained once under bench/out/ (bench/_project.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))  # run as a script: the bench helpers are importable

from _project import OUT as PROJECTS_DIR  # noqa: E402
from _project import make_copy, make_repro, timed_repro  # noqa: E402

BENCH_DIR = ROOT / "bench"
OUT_DIR = BENCH_DIR / "out"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
# The benchmarks the stages define, with their time limits in seconds (generous for 2 cores).
BENCHMARKS = {
    "etl_vs_pandas": 900,
    "etl_out_of_core": 900,
    "lightgbm_train": 1200,
    "lightning_vs_torch": 900,
    "onnx_vs_native": 600,
    "serving_http": 900,
    "text_batching": 600,
    "batch_scoring": 1800,
}
DEFAULT_TIMEOUT = 600
LIBRARIES = (
    "polars",
    "duckdb",
    "pandas",
    "numpy",
    "scikit-learn",
    "lightgbm",
    "torch",
    "lightning",
    "transformers",
    "onnxruntime",
    "onnx",
    "uvicorn",
    "dvc",
    "mlflow",
)
RUNNING = re.compile(r"Running stage '([^']+)'")
LOCK_UPDATE = re.compile(r"(Updating|Generating) lock file")
MAX_HEADLINE = 6
# RESULTS.md from this line on is written by hand (how figures were measured, history) and kept.
NOTES_MARKER = "<!-- notes: written by hand; make bench keeps everything below -->"
# Top-level keys that describe the run rather than measure it; never headline figures.
NOT_HEADLINE = frozenset(
    {
        "machine",
        "platform",
        "env",
        "environment",
        "args",
        "config",
        "settings",
        "python",
        "versions",
        "date",
        "timestamp",
    }
)


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{root}{os.pathsep}{env.get('PYTHONPATH', '')}".rstrip(os.pathsep)
    env.setdefault("HF_HUB_OFFLINE", "1")  # benchmarks never download
    return env


def _run_bounded(
    cmd: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float
) -> tuple[int | None, str, float]:
    """Run `cmd` in its own process group; on timeout kill the whole group (servers included)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
        return proc.returncode, output, time.perf_counter() - started
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return None, output, time.perf_counter() - started


def run_benchmark(
    name: str, bench_dir: Path, out_dir: Path, timeout: float, args: Sequence[str] = ()
) -> dict[str, Any]:
    """Run one benchmark script; its status, wall time, JSON output and, on failure, its log."""
    script = bench_dir / f"{name}.py"
    result: dict[str, Any] = {"name": name, "timeout_s": timeout, "args": list(args)}
    if not script.is_file():
        return {**result, "status": "missing", "error": f"{script.name} not found"}
    output_file = out_dir / f"{name}.json"
    output_file.unlink(missing_ok=True)  # a stale file must not pass for this run's result
    code, log, wall = _run_bounded(
        [sys.executable, str(script), *args], bench_dir.parent, _env(bench_dir.parent), timeout
    )
    result.update(wall_s=round(wall, 2), returncode=code)
    if code is None:
        result.update(status="timeout", error=f"killed after {timeout:.0f} s")
    elif code != 0:
        result.update(status="failed", error=_last_line(log) or f"exit code {code}")
    elif not output_file.is_file():
        result.update(status="no output", error=f"exit 0 but no {output_file.name}")
    else:
        try:
            result.update(status="ok", output=json.loads(output_file.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            result.update(status="failed", error=f"{output_file.name} is not JSON: {exc}")
    if result["status"] != "ok":
        result["log_tail"] = log[-4000:]
    return result


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def bench_dvc(root: Path, timeout: float, profile: str | None = None) -> dict[str, Any]:
    """`make repro` in a fresh copy of the project (default config unless `profile`), then a
    no-op `dvc repro`. The copy is bench/out/project-<profile>: the benchmarks that need
    trained models then measure it (bench/_project.py) instead of training another."""
    name = profile or "default"
    workdir = PROJECTS_DIR / f"project-{name}"
    shutil.rmtree(workdir, ignore_errors=True)
    make_copy(workdir, profile, src=root)
    first = make_repro(workdir, timeout)
    result: dict[str, Any] = {"repro": first, "profile": name, "workdir": str(workdir)}
    if first["status"] == "ok":
        noop = timed_repro(workdir, timeout)
        noop["ran_stages"] = sorted(noop.pop("stages"))  # should be empty
        result["noop"] = noop
    else:  # a half-trained copy must not pass for a trained project
        shutil.rmtree(workdir / "models" / "export", ignore_errors=True)
    return result


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, GPU, Python and the key libraries' versions."""
    cpu = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.MULTILINE)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    os_name = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', _read("/etc/os-release"), re.MULTILINE)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = "none"
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]
        probe = subprocess.run(query, capture_output=True, text=True, check=False)
        gpu = ", ".join(probe.stdout.split("\n")).strip(", ") or "none"
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu": cpu.group(1).strip() if cpu else (platform.processor() or platform.machine()),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "ram_gib": round(int(mem.group(1)) / 2**20, 1) if mem else None,
        "os": f"{os_name.group(1) if os_name else platform.system()} ({platform.platform()})",
        "gpu": gpu,
        "python": platform.python_version(),
        "libraries": versions,
    }


def _git_commit(root: Path) -> str:
    probe = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip() or "unknown"


def _scalars(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        pairs: list[tuple[str, Any]] = []
        for key, item in value.items():
            pairs += _scalars(item, f"{prefix}.{key}" if prefix else str(key))
        return pairs
    if isinstance(value, str | int | float | bool) or value is None:
        return [(prefix, value)]
    return []


def _fmt(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def headline(result: Mapping[str, Any]) -> str:
    """The figures shown in the table: the benchmark's whole "summary", else its first scalars."""
    if result.get("status") != "ok":
        return str(result.get("error", ""))
    output = result.get("output") or {}
    summary = output.get("summary")
    source = summary if isinstance(summary, Mapping) else output
    pairs = [
        (k, v) for k, v in _scalars(source) if v is not None and k.split(".")[0] not in NOT_HEADLINE
    ]
    if source is output:  # no summary chosen by the benchmark: keep the table readable
        pairs = pairs[:MAX_HEADLINE]
    return "; ".join(f"{k}: {_fmt(v)}" for k, v in pairs)


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float):
        return "–"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def markdown(results: Mapping[str, Any]) -> str:
    """bench/RESULTS.md: the machine, one row per benchmark, and the `dvc repro` stage times."""
    m = results["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`python bench/run_all.py`) on {results['date']} at commit "
        f"`{results['commit']}`. Raw figures: `bench/out/results.json`.",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {m['cpu']} |",
        f"| cores | {m['cores']} ({m['cores_usable']} usable) |",
        f"| RAM | {m['ram_gib']} GiB |",
        f"| OS | {m['os']} |",
        f"| GPU | {m['gpu']} |",
        f"| Python | {m['python']} |",
        f"| libraries | {libs} |",
        "",
        "## Benchmarks",
        "",
        "| benchmark | status | wall time | headline figures |",
        "|---|---|---|---|",
    ]
    for r in results["benchmarks"]:
        cell = headline(r).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{r['name']}` | {r['status']} | {_seconds(r.get('wall_s'))} | {cell} |")
    dvc = results.get("dvc")
    config = (
        f"profile `{dvc['profile']}`"
        if dvc and dvc.get("profile", "default") != "default"
        else "default config"
    )
    lines += ["", f"## `dvc repro` wall time per stage ({config}, fresh copy)", ""]
    if not dvc:
        lines.append("Not measured in this run (`--skip-dvc`).")
    else:
        repro = dvc["repro"]
        lines += ["| stage | wall time |", "|---|---|"]
        lines += [f"| `{k}` | {_seconds(v)} |" for k, v in repro["stages"].items()]
        lines.append(f"| **whole `dvc repro`** ({repro['status']}) | {_seconds(repro['wall_s'])} |")
        noop = dvc.get("noop")
        if noop:
            ran = ", ".join(noop["ran_stages"]) or "nothing re-ran"
            lines.append(f"| no-op `dvc repro` ({ran}) | {_seconds(noop['wall_s'])} |")
        else:
            lines.append("| no-op `dvc repro` | not run: the first `dvc repro` failed |")
    return "\n".join(lines) + "\n"


def kept_notes(results_md: Path) -> str:
    """The hand-written part of RESULTS.md (from NOTES_MARKER on), which a run keeps."""
    text = results_md.read_text(encoding="utf-8") if results_md.is_file() else ""
    at = text.find(NOTES_MARKER)
    return "\n" + text[at:] if at >= 0 else ""


def write_outputs(results: Mapping[str, Any], out_dir: Path, results_md: Path) -> None:
    """results.json and RESULTS.md, each replaced atomically (keys keep their run order)."""
    for target, text in (
        (out_dir / "results.json", json.dumps(results, indent=2) + "\n"),
        (results_md, markdown(results) + kept_notes(results_md)),
    ):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)


def run_all(
    names: Sequence[str],
    bench_dir: Path = BENCH_DIR,
    out_dir: Path = OUT_DIR,
    timeouts: Mapping[str, float] | None = None,
    dvc_root: Path | None = ROOT,
    dvc_timeout: float = 3600,
    profile: str | None = None,
    args: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The `dvc repro` timing (unless `dvc_root` is None), then the benchmarks on its copy."""
    out_dir.mkdir(parents=True, exist_ok=True)
    limits = {**BENCHMARKS, **(timeouts or {})}
    dvc = None
    if dvc_root is not None:
        print("[bench] make repro in a fresh copy ...", file=sys.stderr, flush=True)
        dvc = bench_dvc(dvc_root, dvc_timeout, profile=profile)
        print(f"[bench] make repro: {dvc['repro']['status']}", file=sys.stderr, flush=True)
        if dvc["repro"]["status"] == "ok":  # the benchmarks measure the models it trained
            os.environ["BENCH_PROJECT"] = dvc["workdir"]
    benchmarks = []
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        limit = limits.get(name, DEFAULT_TIMEOUT)
        result = run_benchmark(name, bench_dir, out_dir, limit, (args or {}).get(name, ()))
        print(f"[bench] {name}: {result['status']} {headline(result)}", file=sys.stderr)
        benchmarks.append(result)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git_commit(bench_dir.parent),
        "machine": machine_info(),
        "benchmarks": benchmarks,
        "dvc": dvc,
    }


def not_selected(names: Sequence[str]) -> list[dict[str, Any]]:
    """Table rows for the registered benchmarks that `--only` left out."""
    return [
        {"name": n, "status": "not run", "error": "not selected (--only)"}
        for n in BENCHMARKS
        if n not in names
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI; exit 1 when any benchmark or the `dvc repro` timing did not succeed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--timeout", type=float, help="time limit per benchmark (s), for all")
    parser.add_argument("--skip-dvc", action="store_true", help="do not time `dvc repro`")
    parser.add_argument("--dvc-timeout", type=float, default=3600)
    parser.add_argument(
        "--profile",
        help="config profile of the timed `make repro` and so of the measured models (tiny)",
    )
    parser.add_argument(
        "--args",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help='arguments for one benchmark, e.g. --args "batch_scoring=--rss-rows 250000"',
    )
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    extra = {k: shlex.split(v) for k, _, v in (a.partition("=") for a in args.args)}
    timeouts = {n: args.timeout for n in names} if args.timeout else None
    results = run_all(
        names,
        timeouts=timeouts,
        dvc_root=None if args.skip_dvc else ROOT,
        dvc_timeout=args.dvc_timeout,
        profile=args.profile,
        args=extra,
    )
    results["benchmarks"] += not_selected(names)
    write_outputs(results, OUT_DIR, RESULTS_MD)
    print(markdown(results))
    dvc_ok = results["dvc"] is None or results["dvc"]["repro"]["status"] == "ok"
    ran = [b for b in results["benchmarks"] if b["status"] != "not run"]
    return 0 if dvc_ok and all(b["status"] == "ok" for b in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
