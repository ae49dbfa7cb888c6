"""The row pass: one Polars batch of staged rows → cleaned, derived, labelled and split rows.

Normalisation rules come from `serving.features` (category spellings and datetime strings were
mapped once per distinct value in the plan; numeric bounds call `apply_bounds` on the batch), so
the ETL and the server clean raw values identically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipeline.common.dataset import LABEL
from pipeline.etl.contract import DataContract
from pipeline.etl.derive import derive
from pipeline.etl.plan import Plan
from serving import features

SPLIT = "__split__"


@dataclass
class BatchResult:
    """Kept rows (with the split code), rejected rows (row, reason, id, target), counters."""

    kept: pl.DataFrame
    rejected: pl.DataFrame
    nulled: dict[str, int]  # impossible or unreadable values set to null, per column


def feature_spec(contract: DataContract, plan: Plan) -> features.FeatureSpec:
    """The FeatureSpec the ETL applies (and serving rebuilds from the profile)."""
    return features.FeatureSpec(
        numeric=list(contract.numeric),
        boolean=list(plan.boolean),
        bounds={k: list(v) for k, v in contract.bounds.items()},
        categorical=list(contract.categorical),
        datetime=list(contract.datetime),
        text=contract.text,
    )


def _reasons(contract: DataContract, plan: Plan) -> pl.Expr:
    reasons = [pl.col("__reason")]
    for col in plan.datetime_maps:
        reasons.append(
            pl.when(pl.col(col).is_not_null() & pl.col(f"__dt_{col}").is_null()).then(
                pl.lit(f"{col}: '") + pl.col(col).str.slice(0, 40) + "' is not an ISO-8601 datetime"
            )
        )
    if contract.split.method == "time":
        t = contract.split.time_column
        assert t is not None
        src = f"__dt_{t}" if t in plan.datetime_maps else t
        reasons.append(
            pl.when(pl.col(src).is_null()).then(pl.lit(f"{t} is null (the time split needs it)"))
        )
    dup = pl.when(pl.col("__pos").is_in(pl.Series(plan.losers).implode())).then(
        pl.lit("duplicate row")
    )
    return pl.coalesce([*reasons, dup]).alias("__why")


def _split_codes(kept: pl.DataFrame, contract: DataContract, plan: Plan) -> np.ndarray:
    s = contract.split
    if plan.codes is not None:  # hash-keyed splits were decided per position in the plan
        return plan.codes[kept["__pos"].to_numpy()]
    assert plan.split_cuts is not None and s.time_column is not None
    t = kept[s.time_column].cast(pl.Datetime("us")).cast(pl.Int64).to_numpy()
    pos = kept["__pos"].to_numpy()
    (t1, p1), (t2, p2) = plan.split_cuts
    upto1 = (t < t1) | ((t == t1) & (pos <= p1))
    upto2 = (t < t2) | ((t == t2) & (pos <= p2))
    return np.where(upto1, 0, np.where(upto2, 1, 2)).astype(np.int8)


def _with_parsed_datetimes(frame: pl.DataFrame, plan: Plan) -> pl.DataFrame:
    """`__dt_<col>` for each string datetime column: its parsed value (null if unparseable)."""
    return frame.with_columns(
        pl.col(col)
        .replace_strict(
            pl.Series(raw, dtype=pl.String),
            pl.Series(parsed),
            default=None,
            return_dtype=pl.Datetime("us"),
        )
        .alias(f"__dt_{col}")
        for col, (raw, parsed) in plan.datetime_maps.items()
    )


def _cleaned(
    kept: pl.DataFrame, contract: DataContract, plan: Plan, spec: features.FeatureSpec
) -> tuple[list[pl.Series | pl.Expr], dict[str, int]]:
    """Cleaned columns (and the label) for the kept rows; counts of values set to null."""
    nulled: dict[str, int] = {}
    cleaned: list[pl.Series | pl.Expr] = []
    for col in contract.numeric:
        lo, hi = spec.bounds.get(col, [None, None])
        values = features.apply_bounds(kept[col].cast(pl.Float64).to_numpy(), lo, hi)
        series = pl.Series(col, values, dtype=pl.Float64).fill_nan(None)
        nulled[col] = int(series.null_count() - kept[col].null_count())
        cleaned.append(series)
    for col, (raw, norm) in plan.category_maps.items():
        old, new = pl.Series(raw, dtype=pl.String), pl.Series(norm, dtype=pl.String)
        cleaned.append(pl.col(col).replace_strict(old, new, default=None, return_dtype=pl.String))
    for col in contract.datetime:
        src = f"__dt_{col}" if col in plan.datetime_maps else col
        cleaned.append(pl.col(src).cast(pl.Datetime("us")).alias(col))
    if contract.text:
        cleaned.append(pl.col(contract.text).str.strip_chars(features.ASCII_SPACE))
    if not contract.id:
        cleaned.append((pl.col("__pos") + 1).alias(plan.id))
    index = list(range(len(plan.labels)))
    cleaned.append(
        pl.col("__target").replace_strict(plan.labels, index, return_dtype=pl.Int64).alias(LABEL)
    )
    return cleaned, nulled


def transform(
    batch: pl.DataFrame, contract: DataContract, plan: Plan, spec: features.FeatureSpec
) -> BatchResult:
    """Clean, derive, label and split one batch of staged rows."""
    frame = _with_parsed_datetimes(batch, plan).with_columns(_reasons(contract, plan))
    bad = frame["__why"].is_not_null()
    rejected = frame.filter(bad).select(
        (pl.col("__pos") + 1).alias("row"),
        pl.col("__why").alias("reason"),
        (pl.col(contract.id) if contract.id else pl.col("__pos") + 1).cast(pl.String).alias("id"),
        pl.col("__target").alias("target"),
    )
    kept = frame.filter(~bad)
    cleaned, nulled = _cleaned(kept, contract, plan, spec)
    kept = derive(kept.with_columns(cleaned), spec)
    kept = kept.with_columns(pl.Series(SPLIT, _split_codes(kept, contract, plan)))
    text = [spec.text] if spec.text else []
    columns = [plan.id, *spec.numeric, *spec.categorical, *spec.datetime, *text, *spec.derived]
    return BatchResult(kept.select(*columns, LABEL, SPLIT), rejected, nulled)
