"""Tabular serving over HTTP on loopback: the server against a bare FastAPI echo, the previous
hand-written server, and MLServer serving the same LightGBM booster.

Every server starts first, then every load runs in interleaved rounds (bench/_servers.py; `wrk`
when installed). Single records at concurrency 32, batches of 64 at concurrency 8:

- `echo`: bare FastAPI validating the record with the server's own pydantic models (_echo.py);
- `v1`: `/v1/predict`, the same record, the tabular model (LightGBM when served);
- `old_v1` (with --old): the hand-written server of commit cc4822b, its own tiny-profile export
  and record. Off by default: that commit's export now fails its LightGBM parity check with
  today's libraries; bench/RESULTS.md quotes its last measured figures as history;
- `v2`, `v2_batch64`: `/v2/models/{name}/infer`, the same rows as one tensor per field;
- `mlserver`, `mlserver_batch64`: MLServer with mlserver-lightgbm serving the model's
  `booster.txt`, fed the features our graph computes inside (in bench/out/mlserver-venv).

Targets: v1 >= 0.7x the echo's requests/s with p99 <= 1.5x the echo's; v2 ahead of
MLServer on requests/s and p99, single and batch-64. Writes bench/out/serving_http.json.

    python bench/serving_http.py [--seconds 5 --rounds 5]    # BENCH_QUICK=1: 1 s x 2 rounds
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _models import native_pipeline, records, served_model, test_split, v2_body
from _project import OLD_SERVER, OUT, old_project, quick, trained_project
from _servers import (
    Load,
    Server,
    free_port,
    measure,
    paired,
    python_server,
    started,
    write_report,
)

RESULT = OUT / "serving_http.json"
MLSERVER = ("mlserver==1.7.1", "mlserver-lightgbm==1.7.1")
SINGLE_CONCURRENCY, BATCH_CONCURRENCY, BATCH = 32, 8, 64


def mlserver_venv() -> Path:
    """A virtual environment with MLServer, made once (pip, from PyPI)."""
    venv = OUT / "mlserver-venv"
    if not (venv / "bin" / "mlserver").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "--quiet", *MLSERVER]
        subprocess.run(pip, check=True)
    return venv


def mlserver(project: Path, name: str) -> tuple[Server, list[float]] | None:
    """MLServer serving `name`'s booster, and the model's encoded features of the same rows."""
    booster = project / "models" / "trained" / name / "booster.txt"
    if not booster.is_file():
        return None
    pipe = native_pipeline(project, name)
    frame = test_split(project).frame(list(pipe[0].feature_names_in_)).head(BATCH)
    features = pipe[:-1].transform(frame)
    features = np.asarray(features.toarray() if hasattr(features, "toarray") else features)
    repo = OUT / "mlserver-models"
    shutil.rmtree(repo, ignore_errors=True)
    (repo / name).mkdir(parents=True)
    shutil.copy(booster, repo / name / "model.bst")
    settings = {"name": name, "implementation": "mlserver_lightgbm.LightGBMModel"}
    (repo / name / "model-settings.json").write_text(json.dumps(settings))
    # In-process inference (parallel_workers 0): for a model that takes microseconds, its
    # default worker process costs an inter-process hop per request. No debug logging.
    server = {"host": "127.0.0.1", "parallel_workers": 0, "debug": False}
    (repo / "settings.json").write_text(json.dumps(server))
    # Its gRPC and metrics servers get ports of their own, on loopback too (host above).
    ports = {"MLSERVER_HTTP_PORT": "{port}", "MLSERVER_GRPC_PORT": str(free_port())}
    ports["MLSERVER_METRICS_PORT"] = str(free_port())
    argv = [str(mlserver_venv() / "bin" / "mlserver"), "start", str(repo)]
    return Server(argv, f"/v2/models/{name}/ready", repo, ports), features.tolist()


def mlserver_body(rows: list[list[float]]) -> bytes:
    """Missing values as JSON null (JSON has no NaN); MLServer's numpy codec reads null as NaN,
    LightGBM's missing value."""
    data = [None if x != x else x for row in rows for x in row]
    tensor = {"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64"}
    return json.dumps({"inputs": [{**tensor, "data": data}]}).encode()


def plan(project: Path, old: Path | None) -> tuple[dict[str, Server], list[Load], str]:
    """The servers and loads of this run, and the tabular model they serve."""
    name = served_model(project, "tabular")
    if name is None:
        raise SystemExit(f"{project}/models/export serves no tabular model")
    export = str(project / "models" / "export")
    rows = records(project, BATCH)
    v1 = json.dumps({"records": rows[:1], "model": name}).encode()
    servers = {
        "echo": python_server("bench/_echo.py", export, "{port}", ready="/ready"),
        "ours": python_server(
            "-m", "serving", "--models", export, "--port", "{port}", "--log-level", "warning"
        ),
    }
    infer = f"/v2/models/{name}/infer"
    loads = [
        Load("echo", "echo", "/echo", [v1], SINGLE_CONCURRENCY),
        Load("v1", "ours", "/v1/predict", [v1], SINGLE_CONCURRENCY),
        Load("v2", "ours", infer, [_dumps(v2_body(project, rows[:1]))], SINGLE_CONCURRENCY),
    ]
    if old is not None:
        old_name = served_model(old, "tabular") or name
        body = json.dumps({"records": records(old, 1), "model": old_name}).encode()
        servers["old"] = python_server(
            "-m",
            "serving",
            "--models-dir",
            str(old / "models" / "export"),
            "--port",
            "{port}",
            "--log-level",
            "warning",
            cwd=old,
        )
        loads.append(Load("old_v1", "old", "/v1/predict", [body], SINGLE_CONCURRENCY))
    peer = mlserver(project, name)
    if peer is not None:
        servers["mlserver"], features = peer
        loads.append(
            Load("mlserver", "mlserver", infer, [mlserver_body(features[:1])], SINGLE_CONCURRENCY)
        )
    loads.append(
        Load("v2_batch64", "ours", infer, [_dumps(v2_body(project, rows))], BATCH_CONCURRENCY)
    )
    if peer is not None:
        loads.append(
            Load(
                "mlserver_batch64", "mlserver", infer, [mlserver_body(features)], BATCH_CONCURRENCY
            )
        )
    return servers, loads, name


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    """The ratios the targets are stated in (medians of per-round ratios)."""
    out: dict[str, Any] = {
        "v1_vs_echo_rps": paired(results, "v1", "echo", "rps"),
        "v1_vs_echo_p99": paired(results, "v1", "echo", "p99_ms"),
    }
    out["v1_rps_ok"] = out["v1_vs_echo_rps"] >= 0.7
    out["v1_p99_ok"] = out["v1_vs_echo_p99"] <= 1.5
    if "old_v1" in results:
        out["v1_vs_old_rps"] = paired(results, "v1", "old_v1", "rps")
        out["v1_vs_old_p99"] = paired(results, "v1", "old_v1", "p99_ms")
    for ours, peer in (("v2", "mlserver"), ("v2_batch64", "mlserver_batch64")):
        if peer in results:
            rps = out[f"{ours}_vs_mlserver_rps"] = paired(results, ours, peer, "rps")
            p99 = out[f"{ours}_vs_mlserver_p99"] = paired(results, ours, peer, "p99_ms")
            out[f"{ours}_ahead_ok"] = rps > 1 and p99 < 1
    out["errors"] = sum(r["errors"] for r in results.values())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1 if quick() else 5)
    parser.add_argument("--rounds", type=int, default=2 if quick() else 3)
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--old",
        action="store_true",
        help=f"also the hand-written server of {OLD_SERVER}, trained on its tiny profile "
        "(its export fails LightGBM parity with today's libraries, so off by default)",
    )
    args = parser.parse_args()
    project = trained_project()
    old = old_project(timeout=1800) if args.old else None
    servers, loads, name = plan(project, old)
    with started(servers, OUT / "serving_http.servers.log") as urls:
        results = measure(loads, urls, args.seconds, args.rounds, args.tool)
    checks = verdict(results)
    summary = {k: results[k]["rps"] for k in results} | {
        k: v for k, v in checks.items() if not k.endswith("_ok") or v is False
    }
    report = {
        "summary": summary,
        "checks": checks,
        "results": results,
        "model": name,
        "project": str(project),
        "old_server": str(old) if old else "not measured (--old)",
        "concurrency": {"single": SINGLE_CONCURRENCY, f"batch{BATCH}": BATCH_CONCURRENCY},
        "seconds": args.seconds,
        "rounds": args.rounds,
        "quick": quick(),
    }
    write_report(RESULT, report, summary)
    return 0 if checks["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
