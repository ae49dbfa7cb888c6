"""The ETL: DuckDB reads and validates, Polars cleans and derives, Parquet splits come out.

1. DuckDB reads the input (file, glob or downloaded URL) once into a typed staging file in the
   spill directory, under `memory_limit` (larger inputs spill to disk).
2. Aggregates over the staging file validate it and decide labels, spellings, duplicates and
   split cuts (`plan.py`).
3. Polars cleans, derives and splits it batch by batch (`clean.py`); Arrow hands the batches over
   without copies, and each split is appended to its Parquet file as it goes (`rows.py`: reading,
   cleaning and writing run in overlapping threads).
Outputs are written into a temporary directory swapped in whole, so a failed or killed run
leaves the previous `data/processed` untouched.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from omegaconf import DictConfig

from pipeline.common.config import validate
from pipeline.common.dataset import LABEL, PROCESSED_DIR, PROFILE_FILE, SPLITS, Profile
from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_dir, write_json
from pipeline.etl.clean import feature_spec
from pipeline.etl.contract import DataContract, EtlConfig
from pipeline.etl.duplicates import verify
from pipeline.etl.plan import Plan, check_columns, make_plan
from pipeline.etl.profile import StatsAccumulator
from pipeline.etl.rows import batch_rows, write_splits
from pipeline.etl.source import connect, open_source, reader_error
from pipeline.etl.staging import row_pass_sql, stage
from serving.features import FeatureSpec

log = logging.getLogger(__name__)
METRICS_FILE = Path("metrics/etl.json")


@dataclass
class EtlResult:
    """What one ETL run produced."""

    profile: Profile
    metrics: dict[str, Any]


def run_etl(
    contract: DataContract,
    cfg: EtlConfig,
    seed: int,
    out_dir: Path = PROCESSED_DIR,
    metrics_path: Path = METRICS_FILE,
) -> EtlResult:
    """Read, validate, clean, derive and split the data; write splits, profile and metrics."""
    started = time.perf_counter()
    work = Path(cfg.spill_dir) / "run"
    shutil.rmtree(work, ignore_errors=True)
    con = connect(cfg)
    try:
        source = open_source(con, contract, cfg)
        check_columns(source, contract)
        log.info("reading %d %s file(s): %s", len(source.files), source.format, source.label)
        stage(con, source, contract, work)
        plan = make_plan(con, source, contract, cfg, seed)
        log.info("validated and planned in %.1fs", time.perf_counter() - started)
        spec = feature_spec(contract, plan)
        with atomic_dir(out_dir) as tmp:
            try:
                # The row pass's cleaning and writing threads keep two cores busy themselves.
                con.execute(f"SET threads = {max(1, cfg.threads - 2)}")
                # Sized without the row hash column: it is null but for the repeated ids.
                size = batch_rows(con, row_pass_sql(con), cfg)
                sql = row_pass_sql(con, plan.hashed, plan.rows_in)
                batches = con.sql(sql).to_arrow_reader(size)
                stats, nulled, hashed = write_splits(
                    batches, tmp, contract, cfg.compression, plan, spec
                )
                if plan.hashed is not None:
                    verify(con, source, plan.id, hashed)
            except duckdb.Error as exc:
                raise reader_error(exc, source.files, contract) from None
            profile = _profile(contract, cfg, plan, spec, stats, source.format, source.label, seed)
            write_json(tmp / PROFILE_FILE, profile.to_json())
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)
    metrics = {
        "rows_in": plan.rows_in,
        **{f"rows_{k}": v for k, v in profile.rows.items()},
        "duplicates": plan.rejected.get("duplicate row", 0),
        "values_nulled": sum(nulled.values()),
        "duration_s": round(time.perf_counter() - started, 3),
    }
    write_json(metrics_path, metrics)
    return EtlResult(profile, metrics)


def _profile(
    contract: DataContract,
    cfg: EtlConfig,
    plan: Plan,
    spec: FeatureSpec,
    stats: StatsAccumulator,
    fmt: str,
    label: str,
    seed: int,
) -> Profile:
    counts = {s: sum(stats.labels[s].values()) for s in SPLITS}
    for split, n in counts.items():
        if n == 0:
            raise PipelineError(
                f"the {split} split is empty",
                where=label,
                fix="add rows or change the split fractions in the data config",
            )
    schema = {
        plan.id: "id",
        **dict.fromkeys(spec.numeric, "numeric"),
        **dict.fromkeys(spec.categorical, "categorical"),
        **dict.fromkeys(spec.datetime, "datetime"),
        **({spec.text: "text"} if spec.text else {}),
        **dict.fromkeys(spec.derived, "derived"),
    }
    return Profile(
        task=plan.task,
        target=contract.target,
        id=plan.id,
        labels=plan.labels,
        numeric=spec.numeric,
        categorical=spec.categorical,
        text=spec.text,
        datetime=spec.datetime,
        derived=spec.derived,
        rows={**counts, "rejected": sum(plan.rejected.values())},
        columns=stats.columns(schema, cfg.max_levels),
        label_distribution=stats.label_distribution(plan.labels),
        extra={
            "feature_spec": spec.to_json(),
            "data": contract.name,
            "source": label,
            "format": fmt,
            "rows_in": plan.rows_in,
            "rejected_reasons": plan.rejected,
            "seed": seed,
            "split": {
                "method": contract.split.method,
                "train": contract.split.train,
                "val": contract.split.val,
                "test": contract.split.test,
                "time_column": contract.split.time_column,
            },
            "label_column": LABEL,
        },
    )


def etl_entry(cfg: DictConfig) -> str:
    """Stage entry: validate `data` and `etl`, run the ETL, return a one-line summary."""
    contract = validate(cfg.data, DataContract, "data")
    etl_cfg = validate(cfg.etl, EtlConfig, "etl")
    result = run_etl(contract, etl_cfg, int(cfg.seed))
    r = result.profile.rows
    return (
        f"{result.metrics['rows_in']:,} rows in → train {r['train']:,} / val {r['val']:,} / "
        f"test {r['test']:,}, rejected {r['rejected']:,} → {PROCESSED_DIR}"
    )
