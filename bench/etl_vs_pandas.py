"""Benchmark: the DuckDB + Polars ETL against the same ETL in pandas, on >= 5M demo rows.

    nice -n 10 .venv/bin/python bench/etl_vs_pandas.py [--rows 5000000] [--timeout 900]

Writes bench/out/etl_vs_pandas.json and prints one line: both wall times, the speed ratio
(target >= 5x) and both peak memories (each run in its own child process).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.etl_common import OUT, child_main, demo_data, measure, uncompressed_bytes, write_result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--memory-limit", default="2GB", help="memory limit of our whole ETL")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("--work", type=Path, default=OUT / "etl-work")
    args = parser.parse_args()
    files = demo_data(args.rows, args.work)
    script = Path(__file__).resolve()
    ours = measure(script, "ours", args.work, args.rows, args.memory_limit, args.timeout)
    pandas = measure(script, "pandas", args.work, args.rows, args.memory_limit, args.timeout)
    result = {
        "rows": args.rows,
        "data_bytes_uncompressed": uncompressed_bytes(files),
        "ours": ours,
        "pandas": pandas,
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
        f"etl_vs_pandas rows={args.rows:,} "
        f"ours={ours.get('seconds', float('nan')):.1f}s "
        f"peak={ours.get('peak_rss_bytes', 0) / mib:.0f}MiB "
        f"pandas={pandas.get('seconds', float('nan')):.1f}s "
        f"peak={pandas.get('peak_rss_bytes', 0) / mib:.0f}MiB "
        f"ratio={result.get('speed_ratio', 'n/a')}x (target 5x) → {path}"
    )
    return 0 if "speed_ratio" in result else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
    else:
        sys.exit(main())
