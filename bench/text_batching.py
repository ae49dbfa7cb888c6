"""Dynamic batching for the text model over HTTP: the server's default batching against batch-1
serving (`--max-text-batch-size 1 --max-wait-ms 0`), same server otherwise, concurrency 16.

Two loads each: every request the same record (all texts one length: batching's best case), and
the test split's first 256 records cycled (texts of mixed lengths: what batching saves there
depends on grouping texts by length). Servers and rounds as in bench/_servers.py. Target (issue
16): the gain over batch-1 stays what it was before the rebuild (1.5x, mixed lengths 1.44x, in
bench/RESULTS.md of commit f442deb), within noise. Writes bench/out/text_batching.json.

    python bench/text_batching.py [--seconds 5 --rounds 5]    # BENCH_QUICK=1: 1 s x 2 rounds
"""

from __future__ import annotations

import argparse
import json
import sys

from _models import records, served_model
from _project import OUT, quick, trained_project
from _servers import Load, measure, paired, python_server, started, write_report

RESULT = OUT / "text_batching.json"
CONCURRENCY = 16
MIXED = 256  # distinct records cycled in the mixed-length loads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1 if quick() else 5)
    parser.add_argument("--rounds", type=int, default=2 if quick() else 3)
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()
    project = trained_project()
    name = served_model(project, "text", prefer="text_model")
    if name is None:
        raise SystemExit(f"{project}/models/export serves no text model")
    serve = ["-m", "serving", "--models", str(project / "models" / "export"), "--port", "{port}"]
    serve += ["--log-level", "warning"]
    servers = {
        "batched": python_server(*serve),
        "batch1": python_server(*serve, "--max-text-batch-size", "1", "--max-wait-ms", "0"),
    }
    rows = records(project, MIXED)
    same = [json.dumps({"records": rows[:1], "model": name}).encode()]
    mixed = [json.dumps({"records": [r], "model": name}).encode() for r in rows]
    loads = [
        Load(f"{server}{suffix}", server, "/v1/predict", bodies, CONCURRENCY)
        for suffix, bodies in (("", same), ("_mixed", mixed))
        for server in servers
    ]
    with started(servers, OUT / "text_batching.servers.log") as urls:
        results = measure(loads, urls, args.seconds, args.rounds, args.tool)
    summary = {
        "batched_rps": results["batched"]["rps"],
        "batch1_rps": results["batch1"]["rps"],
        "gain": paired(results, "batched", "batch1", "rps"),
        "p99_ratio": paired(results, "batched", "batch1", "p99_ms"),
        "mixed_gain": paired(results, "batched_mixed", "batch1_mixed", "rps"),
        "mixed_p99_ratio": paired(results, "batched_mixed", "batch1_mixed", "p99_ms"),
        "errors": sum(r["errors"] for r in results.values()),
    }
    report = {
        "summary": summary,
        "results": results,
        "model": name,
        "project": str(project),
        "concurrency": CONCURRENCY,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "quick": quick(),
    }
    write_report(RESULT, report, summary)
    return 0 if summary["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
