"""HTTP serving benchmark: the server against a bare echo endpoint on the same uvicorn stack.

In one run, on loopback, each scenario against its own server process (all started up front,
then measured in interleaved rounds so that all see the same machine load; ratios are the
medians of per-round ratios):
1. a bare ASGI endpoint that only echoes JSON (uvicorn + uvloop + httptools), concurrency 32;
2. single-record tabular predictions on the same stack, concurrency 32;
3. the text model with dynamic batching vs batch-1 serving (max_batch_size=1), concurrency 16,
   every request the same record (all texts one length: batching's best case);
4. the same pair on a mix of real records (the test split's, cycled), whose texts differ in
   length: what a batch saves here depends on the server grouping texts by length.
Targets (issue 7): (2) reaches >= 1/3 of (1)'s requests/s with p99 <= 10 ms; in (3) batching
gives >= 2x the throughput of batch-1 with p99 <= 2x batch-1's p99.

    python bench/http_serving.py                       # models/export (after `make repro`)
    python bench/http_serving.py --fixture-models      # build the test fixtures' models first

Writes bench/out/http_serving.json and prints a one-line summary. The load generator is `wrk`
when installed, else a uvloop raw-socket client (bench/_http_load.py), in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._http_load import run_load  # noqa: E402
from serving.contract import load_contract  # noqa: E402
from serving.runtime import warmup_records  # noqa: E402

MIXED_RECORDS = 256  # distinct records cycled in the mixed-length text scenarios

OUT = ROOT / "bench" / "out" / "http_serving.json"
LOG = ROOT / "bench" / "out" / "http_serving.servers.log"
# Text model: dynamic batching vs batch-1 serving, the same server otherwise.
TEXT_BATCHED = ("--max-batch-size", "16", "--max-wait-ms", "5")
TEXT_BATCH1 = ("--max-batch-size", "1", "--max-wait-ms", "0")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _process(args: Sequence[str], ready_url: str) -> Iterator[None]:
    """A server subprocess, ready before the body runs; its log goes to bench/out/."""
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(LOG, "ab") as log:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}; see {LOG}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"not ready: {ready_url}; see {LOG}") from None
                time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        proc.wait(30)


def _measure(url: str, body: bytes, concurrency: int, seconds: float, tool: str) -> dict[str, Any]:
    result = run_load(url, body, concurrency=concurrency, duration_s=seconds, tool=tool)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}


def _summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds, plus every round for the record."""
    out: dict[str, Any] = {
        key: round(statistics.median(r[key] for r in rounds), 3)
        for key in ("rps", "p50_ms", "p99_ms")
    }
    out.update(errors=sum(r["errors"] for r in rounds), tool=rounds[0]["tool"], rounds=rounds)
    return out


def _paired(results: dict[str, Any], a: str, b: str, key: str) -> float:
    """Median over rounds of a[key] / b[key]: each round's pair saw the same machine load."""
    pairs = zip(results[a]["rounds"], results[b]["rounds"], strict=True)
    return round(statistics.median(x[key] / y[key] for x, y in pairs), 3)


def _scenarios(models: Path) -> list[tuple[str, list[str], str, int, str]]:
    """(name, server command, URL path, concurrency, request model) per scenario."""
    contract = load_contract(models)
    kinds = {name: spec.kind for name, spec in contract.models.items()}
    tabular = (
        contract.champion
        if kinds[contract.champion] == "tabular"
        else next(n for n, k in kinds.items() if k == "tabular")
    )
    out = [
        ("echo", ["bench/_http_echo.py"], "/", 32, tabular),
        ("tabular", ["-m", "serving"], "/v1/predict", 32, tabular),
    ]
    text = next((n for n, k in kinds.items() if k == "text"), None)
    if text is not None:
        for suffix in ("", "_mixed"):
            out += [
                (
                    f"text_batched{suffix}",
                    ["-m", "serving", *TEXT_BATCHED],
                    "/v1/predict",
                    16,
                    text,
                ),
                (f"text_batch1{suffix}", ["-m", "serving", *TEXT_BATCH1], "/v1/predict", 16, text),
            ]
    return out


def run(models: Path, seconds: float, rounds: int, tool: str) -> dict[str, Any]:
    """Every scenario, `rounds` times, interleaved so that all see the same machine load.

    All servers start first (idle ones cost nothing); each round then loads one at a time.
    """
    contract = load_contract(models)
    record = warmup_records(contract)[0]
    mixed = _mixed_records(contract, record)
    scenarios = _scenarios(models)
    measured: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in scenarios}
    with ExitStack() as stack:
        urls = {}
        for name, command, path, _, _ in scenarios:
            port = _port()
            args = (
                [*command, str(port)]
                if name == "echo"
                else [
                    *command[:2],
                    "--models-dir",
                    str(models),
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                    *command[2:],
                ]
            )
            ready = f"http://127.0.0.1:{port}/" + ("" if name == "echo" else "health/ready")
            stack.enter_context(_process(args, ready))
            urls[name] = f"http://127.0.0.1:{port}{path}"
        bodies = {
            name: [json.dumps({"records": [r], "model": model}).encode() for r in mixed]
            if name.endswith("_mixed")
            else json.dumps({"records": [record], "model": model}).encode()
            for name, _, _, _, model in scenarios
        }
        for name, _, _, concurrency, _ in scenarios:  # warm-up
            _measure(urls[name], bodies[name], concurrency, 1, tool)
        for _ in range(rounds):
            for name, _, _, concurrency, _ in scenarios:
                measured[name].append(
                    _measure(urls[name], bodies[name], concurrency, seconds, tool)
                )
    results = {name: _summarise(rounds_) for name, rounds_ in measured.items()}
    results["tabular"]["model"] = scenarios[1][4]
    for name in results:
        if name.startswith("text_"):
            settings = TEXT_BATCHED if name.startswith("text_batched") else TEXT_BATCH1
            results[name]["settings"] = " ".join(settings)
    return results


def _mixed_source() -> str:
    test = ROOT / "data" / "processed" / "test.parquet"
    return str(test.relative_to(ROOT)) if test.is_file() else "the warm-up record, texts cut short"


def _mixed_records(contract: Any, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Records whose texts vary in length like real ones: the test split's when the pipeline
    has run (the same project as the models), else the warm-up record with its text cut to
    1..len words."""
    fields = [f.name for f in contract.input_schema]
    test = ROOT / "data" / "processed" / "test.parquet"
    if test.is_file():
        import polars as pl

        frame = pl.read_parquet(test)
        if set(fields) <= set(frame.columns):
            rows = frame.select(fields).head(MIXED_RECORDS).to_dicts()
            return [
                {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
                for row in rows
            ]
    text = next((f.name for f in contract.input_schema if f.type == "text"), None)
    if text is None:
        return []
    words = str(record[text]).split()
    return [{**record, text: " ".join(words[: 1 + i % len(words)])} for i in range(len(words))]


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    """Ratios (medians of per-round ratios) and pass/fail against the issue's targets."""
    out: dict[str, Any] = {
        "tabular_vs_echo_rps": _paired(results, "tabular", "echo", "rps"),
        "tabular_p99_ms": results["tabular"]["p99_ms"],
    }
    out["tabular_rps_ok"] = out["tabular_vs_echo_rps"] >= 1 / 3
    out["tabular_p99_ok"] = out["tabular_p99_ms"] <= 10.0
    if "text_batched" in results:
        out["text_throughput_ratio"] = _paired(results, "text_batched", "text_batch1", "rps")
        out["text_p99_ratio"] = _paired(results, "text_batched", "text_batch1", "p99_ms")
        out["text_throughput_ok"] = out["text_throughput_ratio"] >= 2.0
        out["text_p99_ok"] = out["text_p99_ratio"] <= 2.0
    if "text_batched_mixed" in results:
        out["text_mixed_throughput_ratio"] = _paired(
            results, "text_batched_mixed", "text_batch1_mixed", "rps"
        )
        out["text_mixed_p99_ratio"] = _paired(
            results, "text_batched_mixed", "text_batch1_mixed", "p99_ms"
        )
    out["errors"] = sum(r["errors"] for r in results.values())
    out["no_errors_ok"] = out["errors"] == 0
    return out


def summary(results: dict[str, Any], checks: dict[str, Any]) -> str:
    """The one-line summary."""
    echo, tab = results["echo"], results["tabular"]
    line = (
        f"echo {echo['rps']:.0f} rps (p99 {echo['p99_ms']:.1f} ms) | tabular "
        f"{tab['rps']:.0f} rps = {checks['tabular_vs_echo_rps']:.2f}x echo, p99 "
        f"{tab['p99_ms']:.1f} ms"
    )
    if "text_batched" in results:
        b, s = results["text_batched"], results["text_batch1"]
        line += (
            f" | text batched {b['rps']:.0f} rps vs batch-1 {s['rps']:.0f} rps = "
            f"{checks['text_throughput_ratio']:.2f}x, p99 {b['p99_ms']:.1f} vs "
            f"{s['p99_ms']:.1f} ms ({checks['text_p99_ratio']:.2f}x)"
        )
    if "text_batched_mixed" in results:
        b, s = results["text_batched_mixed"], results["text_batch1_mixed"]
        line += (
            f" | mixed-length texts: batched {b['rps']:.0f} vs batch-1 {s['rps']:.0f} rps = "
            f"{checks['text_mixed_throughput_ratio']:.2f}x"
        )
    failed = [k for k, v in checks.items() if k.endswith("_ok") and not v]
    line += f" | {checks['errors']} errors"
    return line + (f" | FAILED: {', '.join(failed)}" if failed else " | all targets met")


def _models(requested: Path | None, fixtures: bool) -> tuple[Path, str]:
    """The models to serve and where they came from (the pipeline's exports or test fixtures)."""
    default = ROOT / "models" / "export"
    if not fixtures and (requested or (default / "contract.json").is_file()):
        models = requested or default
        if not (models / "contract.json").is_file():
            raise SystemExit(f"{models}/contract.json not found; run `make repro` first")
        return models, str(models)
    # No exports yet (or asked for): the serving tests' small models, built once.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tests.serving.fixtures import build

    models = OUT.parent / "fixture_models" / "export"
    if not (models / "contract.json").is_file():
        build(models)
    return models, "tests/serving/fixtures.py models (no models/export yet)"


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="default models/export; the test fixtures' models when it is absent",
    )
    parser.add_argument(
        "--fixture-models",
        action="store_true",
        help="serve the serving tests' small models (built into bench/out/)",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="per scenario and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians kept)")
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()
    load_before = os.getloadavg()
    models, source = _models(args.models_dir, args.fixture_models)
    results = run(models, args.seconds, args.rounds, args.tool)
    checks = verdict(results)
    headline = {
        "echo_rps": results["echo"]["rps"],
        "tabular_rps": results["tabular"]["rps"],
        "tabular_vs_echo": checks["tabular_vs_echo_rps"],
        "tabular_p99_ms": results["tabular"]["p99_ms"],
    }
    if "text_throughput_ratio" in checks:
        headline.update(
            text_batched_vs_batch1=checks["text_throughput_ratio"],
            text_p99_ratio=checks["text_p99_ratio"],
        )
    if "text_mixed_throughput_ratio" in checks:
        headline.update(text_mixed_batched_vs_batch1=checks["text_mixed_throughput_ratio"])
    report = {
        "summary": headline,
        "results": results,
        "checks": checks,
        "models": source,
        "mixed_records_source": _mixed_source(),
        "load_generator": results["echo"]["tool"],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "seconds_per_scenario": args.seconds,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    print(summary(results, checks))


if __name__ == "__main__":
    main()
