"""Build the text model's input string from raw fields, the same way in training and serving.

The text model reads one string per record: optionally a few tabular fields serialised as
`name: value | name: value | ` in front of the free text. Training (`pipeline.text_model`) and
the inference server both call `build_text`, so the string a model was trained on is exactly the
string it is served — including how numbers, booleans and missing values are spelled.

The spec is plain JSON, stored in `models/text_model/text_config.json` and the export contract:
`{"text": "review", "fields": [{"name": "channel", "type": "category"}, ...]}`.
Standard library only: the server imports this without NumPy, torch or the pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SEPARATOR = " | "
MISSING = "n/a"
FIELD_TYPES = ("number", "category")


def format_value(value: Any, kind: str) -> str:
    """One field value as text; ints, floats and booleans that are equal print the same."""
    if value is None:
        return MISSING
    if kind == "number":
        # JSON callers send 1, 1.0 or true where Parquet holds 1.0: canonicalise through float.
        try:
            number = float(value)
        except (TypeError, ValueError):
            return MISSING
        if math.isnan(number) or math.isinf(number):
            return MISSING
        return f"{number:.6g}"
    text = str(value).strip()
    return text if text else MISSING


def validate_spec(spec: Mapping[str, Any]) -> None:
    """Raise ValueError when a text-input spec is malformed (checked once, at load time)."""
    if not isinstance(spec.get("text"), str) or not spec["text"]:
        raise ValueError("text input spec needs 'text': the name of the free-text column")
    for entry in spec.get("fields", []):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ValueError(f"text input field {entry!r} needs a 'name'")
        if entry.get("type") not in FIELD_TYPES:
            raise ValueError(
                f"text input field {entry['name']!r}: type must be one of {FIELD_TYPES}, "
                f"got {entry.get('type')!r}"
            )


def build_text(record: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    """The model input string for one record (a dict of raw fields, as the API receives it)."""
    parts = [
        f"{entry['name']}: {format_value(record.get(entry['name']), entry['type'])}"
        for entry in spec.get("fields", [])
    ]
    raw = record.get(spec["text"])
    text = "" if raw is None else str(raw)
    return SEPARATOR.join([*parts, text]) if parts else text


def build_texts(columns: Mapping[str, Sequence[Any]], spec: Mapping[str, Any]) -> list[str]:
    """`build_text` over column-oriented data (a batch of records), preserving row order."""
    names = [spec["text"], *(entry["name"] for entry in spec.get("fields", []))]
    missing = [name for name in names if name not in columns]
    if missing:
        raise KeyError(f"text input columns not found: {missing}")
    n_rows = len(columns[spec["text"]])
    rows: Iterable[tuple[Any, ...]] = zip(*(columns[name] for name in names), strict=True)
    out = [build_text(dict(zip(names, row, strict=True)), spec) for row in rows]
    assert len(out) == n_rows
    return out
