"""Derived features for a batch: the numbers `serving.features` computes for the same raw values.

Datetime parts are Polars expressions, property-tested equal to `features.datetime_parts`; text
statistics get the text column's Arrow buffers (UTF-8 bytes and offsets) directly, so millions of
texts need no Python loop and the numbers are the very ones the server computes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from serving import features


def numpy_of(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow array as NumPy, through Polars: pyarrow's own `to_numpy` imports pandas (~0.3 s)
    on first use, in an ETL that never needs it."""
    return pl.Series(values).to_numpy()


def utf8_buffers(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes, int64 offsets, null mask) of a string array; no copy when already large_string."""
    arr = pc.cast(values, pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    )
    missing = np.asarray(numpy_of(arr.is_null()), dtype=bool)
    return data, offsets, missing


# Polars' calendar parts equal `features.datetime_parts` (property-tested) at half the cost.
_DATETIME_PARTS: dict[str, Callable[[Any], pl.Expr]] = {
    "year": lambda t: t.year(),
    "month": lambda t: t.month(),
    "day": lambda t: t.day(),
    "dayofweek": lambda t: t.weekday() - 1,  # Polars counts Monday as 1
    "hour": lambda t: t.hour(),
}


def derive(frame: pl.DataFrame, spec: features.FeatureSpec) -> pl.DataFrame:
    """The frame with the derived feature columns of `spec` appended (cleaned inputs expected)."""
    derived: list[pl.Series | pl.Expr] = []
    for col in spec.datetime:
        t = pl.col(col).cast(pl.Datetime("us")).dt
        for part in spec.datetime_parts:
            name = f"{col}{features.DERIVED_SEP}{part}"
            derived.append(_DATETIME_PARTS[part](t).cast(pl.Float64).alias(name))
    if spec.text:
        data, offsets, missing = utf8_buffers(frame[spec.text].to_arrow())
        stats = features.text_stats_utf8(data, offsets, spec.text_stats, missing)
        for stat, arr in stats.items():
            derived.append(pl.Series(f"{spec.text}{features.DERIVED_SEP}{stat}", arr))
    return frame.with_columns(derived)
