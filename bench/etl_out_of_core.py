"""Benchmark: the ETL on 10M demo rows under a memory limit smaller than the data.

    nice -n 10 .venv/bin/python bench/etl_out_of_core.py [--rows 10000000] [--memory-limit 512MB]

Generates the rows (several part files), runs the ETL in a child process and writes
bench/out/etl_out_of_core.json: the data's decoded size, the limit, wall time and peak RSS.
The data must be at least twice the limit; peak RSS should stay near the limit.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.etl_common import (
    OUT,
    arrow_bytes,
    child_main,
    demo_data,
    measure,
    uncompressed_bytes,
    write_result,
)

UNITS = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def to_bytes(limit: str) -> float:
    """'1GB' → 1e9 (DuckDB's units: KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024)."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]+)\s*", limit)
    if match is None:
        raise ValueError(f"memory limit like 1GB expected, found {limit!r}")
    return float(match.group(1)) * UNITS[match.group(2).upper()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--memory-limit", default="512MB")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds for the ETL run")
    parser.add_argument("--work", type=Path, default=OUT / "etl-work")
    args = parser.parse_args()
    started = time.perf_counter()
    files = demo_data(args.rows, args.work)
    generate_s = time.perf_counter() - started
    script = Path(__file__).resolve()
    run = measure(script, "ours", args.work, args.rows, args.memory_limit, args.timeout)
    data_bytes = uncompressed_bytes(files)  # the smaller, conservative measure of the data
    limit = to_bytes(args.memory_limit)
    result = {
        "rows": args.rows,
        "part_files": len(files),
        "generate_seconds": round(generate_s, 1),
        "data_bytes_uncompressed": data_bytes,
        "data_bytes_in_arrow": arrow_bytes(files),
        "memory_limit": args.memory_limit,
        "data_over_limit": round(data_bytes / limit, 2),
        "etl": run,
    }
    if "peak_rss_bytes" in run:
        result["peak_rss_over_limit"] = round(run["peak_rss_bytes"] / limit, 2)
        result["summary"] = {
            "rows": args.rows,
            "memory_limit": args.memory_limit,
            "data_over_limit": result["data_over_limit"],
            "etl_s": round(run.get("seconds", float("nan")), 1),
            "peak_rss_mib": round(run["peak_rss_bytes"] / (1024 * 1024)),
            "peak_rss_over_limit": result["peak_rss_over_limit"],
        }
    path = write_result("etl_out_of_core", result)
    print(
        f"etl_out_of_core rows={args.rows:,} data={data_bytes / 1e9:.2f}GB "
        f"limit={args.memory_limit} ({result['data_over_limit']}x smaller) "
        f"etl={run.get('seconds', float('nan')):.1f}s "
        f"peak_rss={run.get('peak_rss_bytes', 0) / 1e9:.2f}GB "
        f"({result.get('peak_rss_over_limit', 'n/a')}x the limit) → {path}"
    )
    return 0 if "seconds" in run else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
    else:
        sys.exit(main())
