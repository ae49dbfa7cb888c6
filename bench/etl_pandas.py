"""The same ETL written the usual in-memory pandas way: the benchmark's point of comparison.

It reads the demo data, rejects null targets, drops exact duplicates, checks ids, normalises
categories (with the same `serving.features` function, once per distinct value), nulls impossible
numbers, derives the same features, splits stratified on the same stable hash and writes Parquet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.etl.contract import DataContract
from pipeline.etl.split import assign, class_cuts, uniform
from serving import features


def pandas_etl(
    files: list[Path], contract: DataContract, out_dir: Path, seed: int
) -> dict[str, int]:
    """Run the pandas ETL; returns rows per split."""
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    cols = contract.columns
    df = df[cols]
    bad = df[contract.target].isna() | df[contract.id].isna()
    df = df[~bad]
    df = df[~df.duplicated(subset=cols, keep="first")]
    if df[contract.id].duplicated().any():
        raise ValueError("duplicate ids")
    for col in contract.categorical:
        mapping = {v: features.normalise_category(v) for v in df[col].dropna().unique()}
        df[col] = df[col].map(mapping)
    for col in contract.numeric:
        x = df[col].astype("float64")
        lo, hi = contract.bounds.get(col, [None, None])
        keep = np.isfinite(x)
        if lo is not None:
            keep &= x >= lo
        if hi is not None:
            keep &= x <= hi
        df[col] = x.where(keep)
    for col in contract.datetime:
        dt = pd.to_datetime(df[col])
        parts = {
            "year": dt.dt.year,
            "month": dt.dt.month,
            "day": dt.dt.day,
            "dayofweek": dt.dt.dayofweek,
            "hour": dt.dt.hour,
        }
        for part, values in parts.items():
            df[f"{col}__{part}"] = values.astype("float64")
    if contract.text:
        text = df[contract.text].str.strip(features.ASCII_SPACE)
        df[contract.text] = text
        filled = text.fillna("")
        df[f"{contract.text}__chars"] = filled.str.len().astype("float64")
        df[f"{contract.text}__words"] = filled.str.count(features.WORD_PATTERN).astype("float64")
        df[f"{contract.text}__exclaims"] = filled.str.count("!").astype("float64")
        df[f"{contract.text}__digits"] = filled.str.count(features.DIGIT_PATTERN).astype("float64")
    labels = sorted(df[contract.target].astype(str).unique(), key=float)
    df["__label__"] = df[contract.target].astype(str).map({v: i for i, v in enumerate(labels)})
    df = df.drop(columns=[contract.target])
    u = uniform(pa.array(df[contract.id].astype(str)), salt=seed)
    split = np.empty(len(df), dtype=np.int8)
    cls = df["__label__"].to_numpy()
    for c in np.unique(cls):
        mask = cls == c
        cut1, cut2 = class_cuts(u[mask], (contract.split.train, contract.split.val))
        split[mask] = assign(u[mask], cut1, cut2)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = {}
    for code, name in enumerate(("train", "val", "test")):
        part = df[split == code]
        part.to_parquet(out_dir / f"{name}.parquet", compression="snappy", index=False)
        rows[name] = len(part)
    return rows
