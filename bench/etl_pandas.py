"""The same ETL written the usual in-memory pandas way: the benchmark's point of comparison.

It reads the demo data, rejects null targets, drops exact duplicates, checks ids, normalises
categories (with the same `serving.features` function, once per distinct value), nulls impossible
numbers, splits stratified (exact shares per class, in the order of a seeded hash of the id) and
writes the same columns to Parquet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.etl.config import DataConfig
from serving import features


def pandas_etl(files: list[Path], contract: DataConfig, out_dir: Path, seed: int) -> dict[str, int]:
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
        df[col] = pd.to_datetime(df[col])
    if contract.text:
        df[contract.text] = df[contract.text].str.strip(features.ASCII_SPACE)
    labels = sorted(df[contract.target].astype(str).unique(), key=float)
    df["__label__"] = df[contract.target].astype(str).map({v: i for i, v in enumerate(labels)})
    df = df.drop(columns=[contract.target])
    key = pd.util.hash_pandas_object(df[contract.id], index=False, hash_key=f"{seed:016d}")
    rank = key.groupby(df["__label__"]).rank(method="first")
    n = df.groupby("__label__")["__label__"].transform("size")
    s = contract.split
    split = np.where(
        rank <= (s.train * n).round(), 0, np.where(rank <= ((s.train + s.val) * n).round(), 1, 2)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = {}
    for code, name in enumerate(("train", "val", "test")):
        part = df[split == code]
        part.to_parquet(out_dir / f"{name}.parquet", compression="snappy", index=False)
        rows[name] = len(part)
    return rows
