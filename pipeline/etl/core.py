"""The ETL: `source` finds the input, `staging` types it, `plan` decides every row's fate in
DuckDB, `rows` cleans the rows batch by batch into the splits, `profile` reads statistics back."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import duckdb
from omegaconf import DictConfig

from pipeline.common.config import validate
from pipeline.common.data import PROCESSED_DIR, PROFILE_FILE
from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_dir, write_json, write_text
from pipeline.etl import profile as stats
from pipeline.etl.config import DataConfig, EtlConfig
from pipeline.etl.plan import Plan, make_plan
from pipeline.etl.rows import write_splits
from pipeline.etl.source import Source, check_columns, open_source, reader_error
from pipeline.etl.staging import stage
from serving.schemas import FeatureSpec, Profile, SplitSettings, dump

log = logging.getLogger(__name__)
METRICS_FILE = Path("metrics/etl.json")


def run_etl(
    data: DataConfig,
    cfg: EtlConfig,
    seed: int,
    out_dir: Path = PROCESSED_DIR,
    metrics_path: Path = METRICS_FILE,
) -> Profile:
    """Read, validate, clean and split the data; write splits, profile and metrics."""
    work = Path(cfg.spill_dir) / "run"  # the staging file, UTF-8 copies, downloads
    shutil.rmtree(work, ignore_errors=True)  # a killed run's leftovers
    work.mkdir(parents=True)
    con = duckdb.connect(
        config={
            "memory_limit": f"{cfg.duckdb_bytes}B",
            "temp_directory": str(work.parent / "duckdb"),
            "threads": cfg.duckdb_threads,
            "preserve_insertion_order": True,  # the splits keep the input's row order
        }
    )
    con.execute("SET enable_progress_bar = false")
    try:
        source = open_source(con, data, cfg, work)
        check_columns(source, data)
        log.info("reading %d %s file(s): %s", len(source.files), source.format, source.label)
        try:  # DuckDB reads the input lazily: a bad file can surface in any query
            stage(con, source, data, work)
            plan = make_plan(con, source, data, cfg, seed)
            with atomic_dir(out_dir) as tmp:
                nulled = write_splits(con, data, plan, cfg, tmp)
                profile = _profile(con, data, cfg, plan, source, tmp, seed)
                write_text(tmp / PROFILE_FILE, dump(profile))
        except duckdb.Error as exc:
            raise reader_error(exc, source, data) from None
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)
    if nulled:
        log.info("%d impossible numbers (outside `bounds`, or infinite) set to null", nulled)
    write_json(
        metrics_path,
        {  # row counts only, so that `dvc metrics diff` shows changes in the data
            "rows_in": profile.rows_in,
            **{f"rows_{s}": n for s, n in profile.rows.items() if s != "rejected"},
            "rejected": profile.rows["rejected"],
            "duplicates": profile.rejected_reasons.get("duplicate row", 0),
            "values_nulled": nulled,
        },
    )
    return profile


def _profile(
    con: duckdb.DuckDBPyConnection,
    data: DataConfig,
    cfg: EtlConfig,
    plan: Plan,
    source: Source,
    out: Path,
    seed: int,
) -> Profile:
    rows = stats.split_rows(con, out)
    for split, n in rows.items():
        if n == 0:
            raise PipelineError(
                f"the {split} split is empty",
                where=source.label,
                fix="add rows or change the split fractions in the data config",
            )
    spec = FeatureSpec(
        numeric=data.numeric,
        boolean=plan.boolean,
        bounds={c: (lo, hi) for c, (lo, hi) in data.bounds.items() if c != data.target},
        categorical=data.categorical,
        datetime=data.datetime,
        datetime_formats=data.datetime_format,
        timezone=data.timezone,
        text=data.text,
    )
    regression = plan.task == "regression"
    return Profile(
        data=data.name,
        source=source.label,
        format=source.format,  # type: ignore[arg-type]
        task=plan.task,  # type: ignore[arg-type]
        target=data.target,
        target_transform=data.target_transform,  # type: ignore[arg-type]
        id=plan.id,
        labels=plan.labels,
        positive=plan.labels[-1] if plan.task == "binary" else None,
        features=spec,
        rows_in=plan.rows_in,
        rows={**rows, "rejected": sum(plan.rejected.values())},
        rejected_reasons=plan.rejected,
        columns=stats.column_stats(con, spec, plan.id, cfg.max_levels),
        label_distribution={} if regression else stats.label_distribution(con, plan.labels),
        target_stats=stats.target_stats(con) if regression else {},
        split=SplitSettings(**vars(data.split)),
        seed=seed,
    )


def main(cfg: DictConfig) -> str:
    """Stage entry: validate `data` and `etl`, run the ETL, return a one-line summary."""
    data = validate(cfg.data, DataConfig, "data")
    profile = run_etl(data, validate(cfg.etl, EtlConfig, "etl"), int(cfg.seed))
    r = profile.rows
    return (
        f"{profile.rows_in:,} rows in → train {r['train']:,} / val {r['val']:,} / "
        f"test {r['test']:,}, rejected {r['rejected']:,} ({profile.task}) → {PROCESSED_DIR}"
    )
