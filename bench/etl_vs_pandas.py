"""Benchmark: the DuckDB + Polars ETL against the same ETL in pandas, on >= 5M demo rows.

    nice -n 10 .venv/bin/python bench/etl_vs_pandas.py [--rows 5000000] [--repeat 3]

Writes bench/out/etl_vs_pandas.json and prints one line: both median wall times, the speed
ratio of the medians (target >= 5x) and both peak memories. Each run is its own child process;
the two ETLs take turns, so a slow spell of the machine falls on both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.etl_common import OUT, child_main, demo_data, measure, uncompressed_bytes, write_result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--memory-limit", default="2GB", help="memory limit of our whole ETL")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each ETL (median)")
    parser.add_argument("--work", type=Path, default=OUT / "etl-work")
    args = parser.parse_args()
    files = demo_data(args.rows, args.work)
    script = Path(__file__).resolve()
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "pandas": []}
    for _ in range(max(1, args.repeat)):
        for kind, done in runs.items():
            done.append(
                measure(script, kind, args.work, args.rows, args.memory_limit, args.timeout)
            )
    ours, pandas = _median_run(runs["ours"]), _median_run(runs["pandas"])
    result = {
        "rows": args.rows,
        "data_bytes_uncompressed": uncompressed_bytes(files),
        "ours": ours,
        "pandas": pandas,
        "runs": runs,
        "target_ratio": 5.0,
    }
    if "seconds" in ours and "seconds" in pandas:
        result["speed_ratio"] = round(pandas["seconds"] / ours["seconds"], 2)
        mib = 1024 * 1024
        result["summary"] = {
            "rows": args.rows,
            "ours_s": round(ours["seconds"], 1),
            "pandas_s": round(pandas["seconds"], 1),
            "speed_ratio": result["speed_ratio"],
            "target_ratio": 5.0,
            "ours_peak_mib": round(ours.get("peak_rss_bytes", 0) / mib),
            "pandas_peak_mib": round(pandas.get("peak_rss_bytes", 0) / mib),
        }
    path = write_result("etl_vs_pandas", result)
    mib = 1024 * 1024
    print(
        f"etl_vs_pandas rows={args.rows:,} median of {max(1, args.repeat)} "
        f"ours={ours.get('seconds', float('nan')):.1f}s "
        f"peak={ours.get('peak_rss_bytes', 0) / mib:.0f}MiB "
        f"pandas={pandas.get('seconds', float('nan')):.1f}s "
        f"peak={pandas.get('peak_rss_bytes', 0) / mib:.0f}MiB "
        f"ratio={result.get('speed_ratio', 'n/a')}x (target 5x) → {path}"
    )
    return 0 if "speed_ratio" in result else 1


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median seconds and the highest peak of the runs; the first error if any run failed."""
    failed = [r for r in runs if "seconds" not in r]
    if failed:
        return failed[0]
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
        "rows": runs[0]["rows"],
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
    else:
        sys.exit(main())
