"""Build a text model's input string from prepared fields, the same way in training and serving.

The text model reads one string per record: optionally a few tabular fields serialised as
`name: value | name: value | ` in front of the free text. The text model stage and the server
both call `build_texts`, so the string a model was trained on is exactly the string it is
served, including how numbers and missing values are spelled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from serving.schemas import TextInput

SEPARATOR = " | "
MISSING = "n/a"


def format_value(value: Any, kind: str) -> str:
    """One field value as text; ints, floats and booleans that are equal print the same."""
    if value is None:
        return MISSING
    if kind == "number":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return MISSING
        if math.isnan(number) or math.isinf(number):
            return MISSING
        return f"{number:.6g}"
    text = str(value).strip()
    return text if text else MISSING


def build_texts(columns: Mapping[str, Any], spec: TextInput) -> list[str]:
    """The input string of every row of column-oriented data (prepared columns)."""
    texts = ["" if v is None else str(v) for v in columns[spec.text]]
    if not spec.fields:
        return texts
    parts = [[f"{f.name}: {format_value(v, f.type)}" for v in columns[f.name]] for f in spec.fields]
    return [SEPARATOR.join([*(p[i] for p in parts), t]) for i, t in enumerate(texts)]
