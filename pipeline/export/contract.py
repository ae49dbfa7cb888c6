"""The serving contract (`models/export/contract.json`) and the same facts in ONNX metadata_props.

See docs/architecture.md, "Export and serving contract": the server reads only this directory.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from pipeline.common.dataset import Profile
from pipeline.common.errors import PipelineError
from pipeline.common.lineage import file_md5, git_state, input_hash

SCHEMA_VERSION = 1
LOWER_IS_BETTER = {"log_loss", "brier"}
_NULL_KEYS = ("null_rate", "null_fraction", "nulls", "null_count")
_CATEGORY_KEYS = ("categories", "levels", "values")


def _stats(profile: Profile, column: str) -> dict[str, Any]:
    stats = profile.columns.get(column) if isinstance(profile.columns, dict) else None
    return stats if isinstance(stats, dict) else {}


def _nullable(profile: Profile, column: str) -> bool:
    """Nullable unless the profile says the column had no nulls (unknown → nullable)."""
    stats = _stats(profile, column)
    for key in _NULL_KEYS:
        if isinstance(stats.get(key), int | float):
            return bool(stats[key] > 0)
    return True


def _categories(profile: Profile, column: str) -> list[str] | None:
    stats = _stats(profile, column)
    for key in _CATEGORY_KEYS:
        value = stats.get(key)
        if isinstance(value, dict):
            value = list(value)
        if isinstance(value, list):
            return sorted(str(v) for v in value if v is not None)
    return None


def input_schema(
    profile: Profile, features: dict[str, Any], category_max: int, text_max: int
) -> list[dict[str, Any]]:
    """The raw fields a caller sends: name, type, nullability, bounds, categories, length limits."""
    boolean = set(features.get("boolean") or [])
    bounds = features.get("bounds") or {}
    fields: list[dict[str, Any]] = []
    for name in profile.numeric:
        item: dict[str, Any] = {"name": name, "type": "boolean" if name in boolean else "number"}
        lo, hi = (bounds.get(name) or [None, None])[:2]
        item.update({k: v for k, v in (("min", lo), ("max", hi)) if _finite(v)})
        fields.append(item)
    for name in profile.categorical:
        item = {"name": name, "type": "category", "max_length": category_max}
        categories = _categories(profile, name)
        if categories is not None:
            item["categories"] = categories
        fields.append(item)
    fields += [{"name": name, "type": "datetime"} for name in profile.datetime]
    if profile.text:
        fields.append({"name": profile.text, "type": "text", "max_length": text_max})
    for item in fields:
        item["nullable"] = _nullable(profile, item["name"])
    return fields


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: Path, fix: str) -> dict[str, Any]:
    """A JSON object from a stage output, with a clear error when it is missing."""
    if not path.is_file():
        raise PipelineError("file not found", where=str(path), fix=fix)
    payload = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(payload, dict):
        raise PipelineError("expected a JSON object", where=str(path), fix=fix)
    return payload


def pick_champion(metrics: dict[str, dict[str, Any]], metric: str) -> str:
    """The model with the best validation `metric` (lower is better for log_loss and brier)."""
    scores = {}
    for name, payload in metrics.items():
        value = (payload.get("val") or {}).get(metric)
        if isinstance(value, int | float) and math.isfinite(value):
            scores[name] = float(value)
    if not scores:
        raise PipelineError(
            f"no model has a finite validation '{metric}'",
            where="metrics/<model>.json",
            fix="set export.champion_metric to a metric under 'val' (e.g. roc_auc, macro_f1)",
        )
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    return max(sorted(scores), key=lambda name: sign * scores[name])


def lineage(processed_dir: Path, params_file: Path, model_dirs: dict[str, Path]) -> dict[str, Any]:
    """Git state and DVC-style md5 of the processed data, params.yaml and each model directory."""
    return {
        **git_state(),
        "data": {processed_dir.as_posix(): input_hash(processed_dir)},
        "params": file_md5(params_file) if params_file.is_file() else None,
        "models": {name: input_hash(path) for name, path in sorted(model_dirs.items())},
    }


def set_metadata(model: Any, facts: dict[str, Any]) -> None:
    """Write facts into the ONNX model's metadata_props (JSON-encoded unless already a string)."""
    del model.metadata_props[:]
    for key, value in sorted(facts.items()):
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
