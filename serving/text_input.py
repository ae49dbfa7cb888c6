"""A text model's input string, `name: value | ` per tabular field then the free text, built by
`build_texts` in the text model stage and in the server alike."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from serving.schemas import TextInput

SEPARATOR = " | "
MISSING = "n/a"


def format_value(value: Any, kind: str) -> str:
    """One field value as text; ints, floats and booleans that are equal print the same."""
    if kind == "number":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return MISSING
        return f"{number:.6g}" if math.isfinite(number) else MISSING
    text = "" if value is None else str(value).strip()
    return text or MISSING


def build_texts(columns: Mapping[str, Any], spec: TextInput) -> list[str]:
    """The input string of every row of column-oriented data (prepared columns)."""
    texts = ["" if v is None else str(v) for v in columns[spec.text]]
    if not spec.fields:
        return texts
    parts = [[f"{f.name}: {format_value(v, f.type)}" for v in columns[f.name]] for f in spec.fields]
    return [SEPARATOR.join([*(p[i] for p in parts), t]) for i, t in enumerate(texts)]
