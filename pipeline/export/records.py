"""What callers send: the contract's input schema, split rows as raw JSON records, edge records."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.common.data import SplitRows
from pipeline.common.parity import EDGE_TEXTS, UNSEEN
from serving.schemas import FieldSchema, Profile

EDGE_BASE_ROWS = 3  # test rows each edge is applied to


def input_schema(
    profile: Profile, category_max_length: int, text_max_length: int
) -> list[FieldSchema]:
    """One field per raw input: type, nullable (the ETL saw a null), bounds, categories, limits."""
    spec = profile.features
    fields = []
    for name in spec.raw_inputs:
        stats = profile.columns.get(name)
        field: dict[str, Any] = {"name": name, "nullable": stats is None or stats.null_rate > 0}
        if name in spec.boolean:
            field["type"] = "boolean"
        elif name in spec.numeric:
            field["min"], field["max"] = spec.bounds.get(name, (None, None))
            field["type"] = "number"
        elif name in spec.categorical:
            seen = sorted(stats.level_counts) if stats and stats.level_counts else None
            field |= {"type": "category", "categories": seen, "max_length": category_max_length}
        elif name in spec.datetime:
            field |= {"type": "datetime", "datetime_format": spec.datetime_formats.get(name)}
        else:
            field |= {"type": "text", "max_length": text_max_length}
        fields.append(FieldSchema.model_validate(field))
    return fields


def caller_records(rows: SplitRows, profile: Profile) -> list[dict[str, Any]]:
    """The rows as a caller sends them: JSON numbers and booleans, nulls, datetimes as ISO
    strings (every other row in the declared `datetime_format`, when there is one)."""
    spec = profile.features
    converted: dict[str, list[Any]] = {}
    for name, values in rows.raw.items():
        if name in spec.numeric:
            as_bool = name in spec.boolean
            converted[name] = [
                None if math.isnan(v) else (bool(v) if as_bool else float(v)) for v in values
            ]
        elif name in spec.datetime:
            fmt = spec.datetime_formats.get(name)
            converted[name] = [
                _datetime_text(v, fmt if i % 2 else None) for i, v in enumerate(values)
            ]
        else:
            converted[name] = [None if v is None else str(v) for v in values]
    return [dict(zip(converted, row, strict=True)) for row in zip(*converted.values(), strict=True)]


def _datetime_text(value: np.datetime64, fmt: str | None) -> str | None:
    if np.isnat(value):
        return None
    if fmt is None:
        return str(np.datetime_as_string(value, unit="us"))
    return value.astype("datetime64[us]").item().strftime(fmt)


def edge_records(
    base: list[dict[str, Any]], schema: list[FieldSchema], profile: Profile
) -> dict[str, list[dict[str, Any]]]:
    """Named groups of valid but unusual records, each a few real rows with one thing changed:
    nulls wherever nullable, unseen categories, odd texts, extreme numbers within bounds."""
    bases = base[:EDGE_BASE_ROWS]
    nullable = [f.name for f in schema if f.nullable]
    changes: dict[str, list[tuple[str, Sequence[Any]]]] = {  # group → (field, values in turn)
        "edge: nulls": [(n, [None]) for n in nullable],
        "edge: unseen categories": [(f.name, UNSEEN) for f in schema if f.type == "category"],
        "edge: texts": [(f.name, odd_texts(f.max_length)) for f in schema if f.type == "text"],
        "edge: extreme numbers": [
            (f.name, extreme_numbers(f, profile)) for f in schema if f.type == "number"
        ],
    }
    out = {
        group: [{**row, name: v} for name, values in fields for v in values for row in bases]
        for group, fields in changes.items()
        if fields
    }
    if nullable:
        out["edge: nulls"][:0] = [{**row, **dict.fromkeys(nullable)} for row in bases]
    return out


def odd_texts(max_length: int | None) -> list[str]:
    """The model stages' edge texts and one as long as allowed, each cut to `max_length`."""
    longest, words = max_length or 5000, "Refund broken GREAT café naïve 123 ok! "
    return [t[:longest] for t in (*EDGE_TEXTS, words * (longest // len(words) + 1))]


def extreme_numbers(field: FieldSchema, profile: Profile) -> list[float]:
    """The declared bounds where there are some; else ten times the observed range beyond the
    observed extremes (a value a caller may well send); and zero when it is allowed."""
    stats = profile.columns.get(field.name)
    lo_seen = float(stats.min) if stats and isinstance(stats.min, int | float) else -1.0
    hi_seen = float(stats.max) if stats and isinstance(stats.max, int | float) else 1.0
    span = max(hi_seen - lo_seen, 1.0)
    lo = field.min if field.min is not None else lo_seen - 10 * span
    hi = field.max if field.max is not None else hi_seen + 10 * span
    return [lo, hi] + ([0.0] if lo <= 0.0 <= hi else [])
