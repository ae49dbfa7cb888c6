"""Shared pieces of the ETL benchmarks: demo data on disk and measured child processes.

Every measured run is a fresh child process that reports its own wall time and peak resident
memory (`getrusage`), so one run's memory never leaks into another's figure.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from omegaconf import OmegaConf

from pipeline.common.config import validate
from pipeline.etl.config import DataConfig, EtlConfig
from pipeline.generate.core import GenerateConfig, generate

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def demo_data(rows: int, work: Path, seed: int = 42) -> list[Path]:
    """Generate `rows` demo rows under work/raw-<rows> once; reuse them on later runs."""
    raw = work / f"raw-{rows}"
    if not list(raw.glob("part-*.parquet")):
        generate(GenerateConfig(rows=rows, workers=2), seed, raw)
    return sorted(raw.glob("part-*.parquet"))


def uncompressed_bytes(files: list[Path]) -> int:
    """The data's size once decoded (Parquet's uncompressed row-group sizes)."""
    total = 0
    for f in files:
        meta = pq.read_metadata(f)
        total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return total


def arrow_bytes(files: list[Path]) -> int:
    """The data's size as Arrow tables in memory (first file measured, scaled by row count)."""
    first = pq.read_table(files[0])
    total_rows = sum(pq.read_metadata(f).num_rows for f in files)
    return int(first.nbytes * total_rows / max(first.num_rows, 1))


def demo_config(files: list[Path]) -> DataConfig:
    """configs/data/demo.yaml pointed at the benchmark's files."""
    node = OmegaConf.load(ROOT / "configs" / "data" / "demo.yaml")
    node.path = str(files[0].parent / "part-*.parquet")
    return validate(node, DataConfig, "data")


def run_ours(files: list[Path], out: Path, memory_limit: str, spill: Path) -> dict[str, Any]:
    """The project's ETL on `files` (called inside the child)."""
    from pipeline.etl.core import run_etl

    cfg = EtlConfig(memory_limit=memory_limit, spill_dir=str(spill))
    profile = run_etl(demo_config(files), cfg, 42, out / "processed", out / "etl.json")
    return dict(profile.rows)


def child_main(argv: list[str]) -> None:
    """`<script> --child ours|pandas <work> <rows> <memory_limit>`: run one ETL, print JSON."""
    kind, work, rows, memory_limit = argv[0], Path(argv[1]), int(argv[2]), argv[3]
    files = demo_data(rows, work)
    started = time.perf_counter()
    if kind == "ours":
        result = run_ours(files, work / "ours", memory_limit, work / "spill")
    else:
        sys.path.insert(0, str(ROOT / "bench"))
        from etl_pandas import pandas_etl

        result = pandas_etl(files, demo_config(files), work / "pandas", 42)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak, "rows": result}))


def measure(
    script: Path, kind: str, work: Path, rows: int, memory_limit: str, timeout_s: float
) -> dict[str, Any]:
    """Run one child; returns its JSON report, or {"error": ...} on failure or timeout."""
    cmd = [sys.executable, str(script), "--child", kind, str(work), str(rows), memory_limit]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f}s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """bench/out/<name>.json."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
