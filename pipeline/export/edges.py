"""Edge rows for the parity checks: nulls, unseen categories, extremes, odd texts, split thresholds.

Each builder starts from real test rows and changes one thing, so every row stays a valid record
apart from the edge it probes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipeline.common.dataset import Profile
from pipeline.export.tabular import GraphInput, native_frame

EXTREMES = (1e30, -1e30, 0.0, -0.0, 1e-30)  # within float32, the narrowest graph input type
UNSEEN = "__unseen_category__"
FLOAT32_MAX = float(np.finfo(np.float32).max)
_BASE_ROWS = 4  # test rows each edge is applied to


def _bases(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    take = rng.choice(len(frame), size=min(_BASE_ROWS, len(frame)), replace=False)
    return frame.iloc[np.sort(take)].reset_index(drop=True)


def _variants(bases: pd.DataFrame, column: str, values: list[Any]) -> pd.DataFrame:
    rows = []
    for value in values:
        block = bases.copy()
        block[column] = pd.Series([value] * len(block), index=block.index, dtype=object)
        rows.append(block)
    out = pd.concat(rows, ignore_index=True)
    return out.astype({column: bases[column].dtype}) if _numeric(bases[column]) else out


def _numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series.dtype))


def tabular_edges(
    frame: pd.DataFrame,
    inputs: list[GraphInput],
    nullable: set[str],
    text: str | None,
    long_text_chars: int,
    seed: int,
) -> dict[str, pd.DataFrame]:
    """Named edge frames for a tabular model's input columns."""
    bases = _bases(frame, seed)
    columns = [i.column for i in inputs]
    out: dict[str, pd.DataFrame] = {}
    nulls = [_variants(bases, c, [None]) for c in columns if c in nullable]
    if nulls:
        all_null = bases.copy()
        for c in columns:
            if c in nullable:
                all_null[c] = pd.Series([None] * len(all_null), dtype=all_null[c].dtype)
        out["edge:nulls"] = pd.concat([*nulls, all_null], ignore_index=True)
    categorical = [i.column for i in inputs if i.dtype == "string" and i.column != text]
    if categorical:
        out["edge:unseen_categories"] = pd.concat(
            [_variants(bases, c, [UNSEEN, UNSEEN.upper()]) for c in categorical],
            ignore_index=True,
        )
    numeric = [i.column for i in inputs if i.dtype != "string"]
    if numeric:
        out["edge:extreme_values"] = pd.concat(
            [_variants(bases, c, list(EXTREMES)) for c in numeric], ignore_index=True
        )
    if text and text in columns:
        out["edge:texts"] = _variants(bases, text, text_edge_values(long_text_chars))
    return out


def text_edge_values(long_text_chars: int) -> list[str]:
    """Empty, blank, punctuation-only, non-ASCII and far-too-long texts."""
    words = "refund broken great Delivery LATE café naïve über 123 x"
    return [
        "",
        "   ",
        "?!.,;",
        "ÉCOLE Straße ĲSSEL déjà-vu — «quoted» 日本語 🙂",
        (words + " ") * (long_text_chars // (len(words) + 1) + 1),
    ]


def threshold_rows(
    frame: pd.DataFrame,
    pipeline: Any,
    inputs: list[GraphInput],
    profile: Profile,
    seed: int,
    max_thresholds: int = 64,
) -> pd.DataFrame:
    """Rows exactly on LightGBM split thresholds, one float64 and one float32 step either side."""
    booster = getattr(pipeline.steps[-1][1], "booster_", None)
    if booster is None:
        return frame.iloc[:0]
    mapping = _identity_features(frame, pipeline, inputs, profile)
    by_feature: dict[int, set[float]] = {}
    for tree in booster.dump_model()["tree_info"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_feature" in node:
                if node.get("decision_type") == "<=" and int(node["split_feature"]) in mapping:
                    by_feature.setdefault(int(node["split_feature"]), set()).add(
                        float(node["threshold"])
                    )
                stack.extend(node[k] for k in ("left_child", "right_child") if k in node)
    rng = np.random.default_rng(seed)
    bases = _bases(frame, seed)
    blocks = []
    for feature, thresholds in sorted(by_feature.items()):
        chosen = np.array(sorted(thresholds), dtype=np.float64)
        if len(chosen) > max_thresholds:
            chosen = np.sort(rng.choice(chosen, size=max_thresholds, replace=False))
        with np.errstate(over="ignore"):  # LightGBM's 1e300 "all finite values" thresholds
            t32 = chosen.astype(np.float32)
            values = np.concatenate(
                [
                    chosen,
                    np.nextafter(chosen, np.inf),
                    np.nextafter(chosen, -np.inf),
                    t32.astype(np.float64),
                    np.nextafter(t32, np.float32(np.inf)).astype(np.float64),
                    np.nextafter(t32, np.float32(-np.inf)).astype(np.float64),
                ]
            )
        # Only values a caller can send: the API rejects non-finite and beyond-float32 numbers.
        values = values[np.isfinite(values) & (np.abs(values) <= FLOAT32_MAX)]
        blocks.append(_variants(bases, mapping[feature], list(values)))
    return pd.concat(blocks, ignore_index=True) if blocks else frame.iloc[:0]


def _identity_features(
    frame: pd.DataFrame, pipeline: Any, inputs: list[GraphInput], profile: Profile
) -> dict[int, str]:
    """Transformed feature index → raw numeric column, where preprocessing passes values as is."""
    sample = native_frame(frame.head(200), profile)
    transformed = pipeline[:-1].transform(sample)
    if hasattr(transformed, "toarray"):
        transformed = transformed.toarray()
    transformed = np.asarray(transformed, dtype=np.float64)
    out: dict[int, str] = {}
    for spec in inputs:
        if spec.dtype == "string":
            continue
        raw = pd.to_numeric(sample[spec.column], errors="coerce").to_numpy(np.float64)
        known = ~np.isnan(raw)
        if known.sum() < 2 or np.unique(raw[known]).size < 2:
            continue
        for j in range(transformed.shape[1]):
            if j not in out and np.array_equal(transformed[known, j], raw[known]):
                out[j] = spec.column
                break
    return out
