"""Batch scoring (`python -m serving.batch`) of the test split repeated to 1M rows, against ONNX
Runtime alone running the same graph on inputs built beforehand; its peak memory at 1M against
4M rows; and where its time goes.

The tabular model is LightGBM when served (else the champion). Each scoring run is a child
process (wall time and peak RSS from `wait4`; start-up and model loading included); it
alternates with the ONNX Runtime runs, which use the same session settings (all cores) and run
the first chunk's pre-built inputs (serving.batch's default chunk) as many times as the
file has chunks. The breakdown times each step of serving.batch on one chunk in this process,
and the text folding done one text at a time beside `fold_texts`, the fast path it uses.
Targets: rows/s >= 0.8x ONNX Runtime alone; peak RSS at 4M rows within 1.3x of 1M rows. Writes
bench/out/batch_scoring.json.

    python bench/batch_scoring.py [--rows 1000000 --repeat 1 --rss-rows 4000000]
    BENCH_QUICK=1 python bench/batch_scoring.py                  # 50,000 and 200,000 rows
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from _models import contract, served_model
from _project import OUT, ROOT, quick, trained_project

from serving.batch import CHUNK_ROWS

RESULT = OUT / "batch_scoring.json"
WORK = OUT / "batch"


def input_file(project: Path, rows: int) -> Path:
    """The test split's input fields (and id) repeated to `rows` rows, as Parquet."""
    spec = contract(project)
    names = [f["name"] for f in spec["input_schema"]] + ([spec["id"]] if spec.get("id") else [])
    table = pq.read_table(project / "data" / "processed" / "test.parquet", columns=names)
    repeated = pa.concat_tables([table] * -(-rows // table.num_rows)).slice(0, rows)
    path = WORK / f"input-{rows}.parquet"
    WORK.mkdir(parents=True, exist_ok=True)
    pq.write_table(repeated, path)
    return path


def score_cli(project: Path, name: str, source: Path) -> dict[str, Any]:
    """`python -m serving.batch` in a child process: wall seconds and peak RSS."""
    output = WORK / f"scored-{source.stem}.parquet"
    export = project / "models" / "export"
    argv = [sys.executable, "-m", "serving.batch", str(source), str(output)]
    argv += ["--models", str(export), "--model", name]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    log = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"serving.batch failed:\n{log[-2000:]}")
    rows = pq.read_metadata(source).num_rows
    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),  # Linux: KiB
    }


def first_chunk(project: Path, name: str, source: Path) -> tuple[Any, Any]:
    """The model loaded as serving.batch loads it (all cores), and the input's first chunk as
    serving.batch reads it."""
    from serving.batch import _read_parquet
    from serving.schemas import load_contract
    from serving.scoring import load_scorers

    export = project / "models" / "export"
    spec = load_contract(export)
    only = spec.model_copy(update={"models": {name: spec.models[name]}})
    cores = os.cpu_count() or 1
    scorer = load_scorers(only, export, cores, cores, 1000)[name]
    return scorer, next(_read_parquet(source, spec, CHUNK_ROWS, None))


def prebuilt_feed(scorer: Any, chunk: Any) -> dict[str, Any]:
    """The graph inputs of one chunk, built once (a tabular graph takes one feed per chunk)."""
    from serving.features import prepare_columns

    typed, rejected = scorer.check(chunk.raw)
    assert not rejected, rejected[:3]
    (feed,) = scorer.model.feeds(prepare_columns(typed, scorer.contract.features))
    return feed


def ort_alone(model: Any, feed: dict[str, Any], rows: int) -> dict[str, Any]:
    """ONNX Runtime's own rows/s on `rows` rows: the pre-built chunk run as often as serving.batch
    runs a chunk (the input repeats the test split, so every chunk costs the graph the same)."""
    names = list(model.outputs.values())
    full, rest = divmod(rows, CHUNK_ROWS)
    tail = {k: v[:rest] for k, v in feed.items()}
    started = time.perf_counter()
    for _ in range(full):
        model.session.run(names, feed)
    if rest:
        model.session.run(names, tail)
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds)}


def _best_ms(call: Callable[[], Any], times: int = 3) -> float:
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def breakdown(scorer: Any, source: Path) -> dict[str, Any]:
    """Where serving.batch spends its time on one chunk (ms, best of 3, in this process), and
    the text folding one text at a time beside `fold_texts` (the fast path serving.batch uses),
    on the chunk's texts and on the same texts made distinct (the repeated test split has few)."""
    from serving import features as ft
    from serving.batch import _read_parquet

    spec = scorer.contract.features
    chunk = next(_read_parquet(source, scorer.contract, CHUNK_ROWS, None))
    typed, _ = scorer.check(chunk.raw)
    prepared = ft.prepare_columns(typed, spec)
    (feed,) = scorer.model.feeds(prepared)
    names = list(scorer.model.outputs.values())
    texts = list(prepared[spec.text]) if spec.text else []
    distinct = [f"{t} {i}" if t else t for i, t in enumerate(texts)]
    stages = {
        "read_arrow_to_python": lambda: next(
            _read_parquet(source, scorer.contract, CHUNK_ROWS, None)
        ),
        "check": lambda: scorer.check(chunk.raw),
        "prepare_columns": lambda: ft.prepare_columns(typed, spec),
        "graph": lambda: scorer.model.run(prepared),  # graph_inputs + session_run + outputs
        "graph_inputs": lambda: scorer.model.feeds(prepared),
        "session_run": lambda: scorer.model.session.run(names, feed),
    }
    parts = {
        "categories": lambda: [ft.normalise_categories(typed[c]) for c in spec.categorical],
        "datetimes": lambda: [
            ft.parse_datetimes(typed[c], spec.datetime_formats.get(c), spec.timezone)
            for c in spec.datetime
        ],
        "datetime_parts": lambda: [
            ft.datetime_parts(prepared[c], spec.datetime_parts) for c in spec.datetime
        ],
        "clean_text": lambda: ft.clean_text(typed[spec.text]) if spec.text else None,
        "text_stats": lambda: ft.text_stats(texts, spec.text_stats) if spec.text else None,
        "fold_texts": lambda: ft.fold_texts(texts),
    }
    folding = {
        "one_by_one": lambda: [ft.fold_text(t) for t in texts],
        "fold_texts": lambda: ft.fold_texts(texts),
        "one_by_one_distinct_texts": lambda: [ft.fold_text(t) for t in distinct],
        "fold_texts_distinct_texts": lambda: ft.fold_texts(distinct),
    }
    timed = {k: _best_ms(v) for k, v in (stages | parts | folding).items()}
    return {
        "rows": chunk.size,
        "distinct_texts": len(set(texts)),
        "stages_ms": {k: timed[k] for k in stages},
        "prepare_columns_parts_ms": {k: timed[k] for k in parts},
        "text_folding_ms": {k: timed[k] for k in folding},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000 if quick() else 1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--rss-rows", type=int, help="rows of the second input for peak RSS (default 4x --rows)"
    )
    args = parser.parse_args()
    args.rss_rows = args.rss_rows or 4 * args.rows
    project = trained_project()
    name = served_model(project, "tabular")
    if name is None:
        raise SystemExit(f"{project}/models/export serves no tabular model")
    source = input_file(project, args.rows)
    scorer, chunk = first_chunk(project, name, source)
    feed = prebuilt_feed(scorer, chunk)
    cli, ort = [], []
    for _ in range(args.repeat):  # alternating, so a slow spell falls on all
        cli.append(score_cli(project, name, source))
        ort.append(ort_alone(scorer.model, feed, args.rows))
    ratio = statistics.median(o["seconds"] / c["seconds"] for c, o in zip(cli, ort, strict=True))
    where = breakdown(scorer, source)
    large = score_cli(project, name, input_file(project, args.rss_rows))
    rss = max(c["peak_rss_mib"] for c in cli)
    # Growth of peak RSS from the smaller input to the larger (--rss-rows may be either side).
    by_rows = sorted([(args.rows, rss), (args.rss_rows, large["peak_rss_mib"])])
    summary = {
        "rows": args.rows,
        "batch_rows_per_s": statistics.median(c["rows_per_s"] for c in cli),
        "ort_rows_per_s": statistics.median(o["rows_per_s"] for o in ort),
        "batch_vs_ort": round(ratio, 3),
        "peak_rss_mib": rss,
        "rss_rows": args.rss_rows,
        "peak_rss_mib_at_rss_rows": large["peak_rss_mib"],
        "rss_growth": round(by_rows[1][1] / by_rows[0][1], 3),
    }
    checks = {"speed_ok": ratio >= 0.8, "memory_ok": summary["rss_growth"] <= 1.3}
    report = {
        "summary": summary | {k: v for k, v in checks.items() if not v},
        "checks": checks,
        "batch_runs": cli,
        "ort_runs": ort,
        "batch_rss_rows": large,
        "breakdown": where,
        "model": name,
        "project": str(project),
        "quick": quick(),
    }
    for path in WORK.glob("*.parquet"):  # up to a few GB at full size
        path.unlink()
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(report, indent=2) + "\n")
    print(" | ".join(f"{k} {v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
