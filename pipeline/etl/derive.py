"""Derived features for a batch, computed by `serving.features` on arrays pulled from Polars.

Datetime parts get NumPy datetime64 arrays; text statistics get the text column's Arrow buffers
(UTF-8 bytes and offsets) directly, so millions of texts need no Python loop and the numbers
are the very ones the server computes for the same raw text.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from serving import features


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
    missing = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return data, offsets, missing


def derive(frame: pl.DataFrame, spec: features.FeatureSpec) -> pl.DataFrame:
    """The frame with the derived feature columns of `spec` appended (cleaned inputs expected)."""
    derived: list[pl.Series] = []
    for col in spec.datetime:
        values = frame[col].cast(pl.Datetime("us")).to_numpy()
        for part, arr in features.datetime_parts(values, spec.datetime_parts).items():
            name = f"{col}{features.DERIVED_SEP}{part}"
            derived.append(pl.Series(name, arr, dtype=pl.Float64).fill_nan(None))
    if spec.text:
        data, offsets, missing = utf8_buffers(frame[spec.text].to_arrow())
        stats = features.text_stats_utf8(data, offsets, spec.text_stats, missing)
        for stat, arr in stats.items():
            derived.append(pl.Series(f"{spec.text}{features.DERIVED_SEP}{stat}", arr))
    return frame.with_columns(derived)
