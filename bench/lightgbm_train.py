"""LightGBM training time on >= 1M demo rows with 2 threads (the stage's own code path).

Generates the demo data and runs the ETL in a temporary copy of `configs/` (the repo's data/ is
not touched), then times, on the train split, the stage's own pieces (`pipeline.lightgbm`):
encoding (`preprocessor().fit_transform`) and fitting the classifier with the stage's
deterministic settings (`estimator()`), a fixed number of trees and no early stopping, so runs
compare. A time budget stops boosting early (reported) to keep the bench
bounded. Writes bench/out/lightgbm_train.json and prints one summary line.

    python bench/lightgbm_train.py                      # 1.3M rows → 1.03M train rows, 2 threads
    python bench/lightgbm_train.py --rows 2500000 --trees 200
    BENCH_QUICK=1 python bench/lightgbm_train.py        # 20,000 rows, 10 trees
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _project import OUT as OUT_DIR
from _project import ROOT, quick

OUT = OUT_DIR / "lightgbm_train.json"


def _prepare(work: Path, rows: int, seed: int) -> float:
    """Generate `rows` demo rows and run the ETL in `work`; returns seconds spent."""
    shutil.copytree(ROOT / "configs", work / "configs")
    started = time.perf_counter()
    for command in (
        ["-m", "pipeline.generate", f"generate.rows={rows}", f"seed={seed}"],
        ["-m", "pipeline.etl", f"seed={seed}"],
    ):
        subprocess.run([sys.executable, *command], cwd=work, check=True)
    return time.perf_counter() - started


def _time_budget(seconds: float, state: dict[str, Any]) -> Any:
    """A LightGBM callback that ends boosting once `seconds` have passed."""
    import lightgbm

    started = time.perf_counter()

    def callback(env: Any) -> None:
        state["trees"] = env.iteration + 1
        if time.perf_counter() - started > seconds:
            state["stopped_by_budget"] = True
            raise lightgbm.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    return callback


def bench(work: Path, trees: int, threads: int, budget_s: float, seed: int) -> dict[str, Any]:
    """Encode the train split and fit LightGBM on it, as the stage does; returns the timings."""
    os.chdir(work)
    from pipeline.common.data import Splits
    from pipeline.lightgbm.config import LightGBMConfig
    from pipeline.lightgbm.core import LightGBM

    data = Splits.load(Path("data/processed"))
    model = LightGBM("lightgbm", LightGBMConfig(), data.profile, seed)
    frame, labels = data.train.frame(model.columns()), data.train.y

    started = time.perf_counter()
    matrix = model.preprocessor().fit_transform(frame, labels)
    encode_s = time.perf_counter() - started

    state: dict[str, Any] = {"trees": 0, "stopped_by_budget": False}
    estimator = model.estimator(n_estimators=trees, n_jobs=threads)
    started = time.perf_counter()
    estimator.fit(matrix, labels, callbacks=[_time_budget(budget_s, state)])
    fit_s = time.perf_counter() - started
    return {
        "train_rows": int(matrix.shape[0]),
        "features": int(matrix.shape[1]),
        "threads": threads,
        "trees": state["trees"],
        "stopped_by_budget": state["stopped_by_budget"],
        "encode_s": round(encode_s, 2),
        "fit_s": round(fit_s, 2),
        "s_per_tree": round(fit_s / max(state["trees"], 1), 4),
        "rows_per_s_per_tree": round(matrix.shape[0] * state["trees"] / fit_s),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=20_000 if quick() else 1_300_000, help="demo rows (~79%% train)"
    )
    parser.add_argument("--trees", type=int, default=10 if quick() else 100, help="rounds to time")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=300.0, help="stop boosting after this")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lightgbm-bench-") as tmp:
        work = Path(tmp)
        prepare_s = _prepare(work, args.rows, args.seed)
        result = bench(work, args.trees, args.threads, args.budget_s, args.seed)
        os.chdir(ROOT)
    result = {"rows_generated": args.rows, "prepare_s": round(prepare_s, 1), **result}
    result["summary"] = {
        "train_rows": result["train_rows"],
        "threads": result["threads"],
        "trees": result["trees"],
        "fit_s": result["fit_s"],
        "s_per_tree": result["s_per_tree"],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    budget_note = " (stopped by the time budget)" if result["stopped_by_budget"] else ""
    print(
        f"lightgbm_train: {result['train_rows']:,} rows x {result['features']} features, "
        f"{result['threads']} threads: {result['trees']} trees in {result['fit_s']:.1f}s "
        f"({result['s_per_tree']:.3f}s/tree){budget_note}; encoding {result['encode_s']:.1f}s; "
        f"peak RSS {result['peak_rss_mb']} MB → {OUT.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
