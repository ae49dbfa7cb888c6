"""Edge rows and the comparison rules of the parity checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.common.data import Predictions, Splits
from pipeline.common.parity import compare, edge_splits
from serving.features import fold_text
from serving.schemas import Decision
from tests.common.test_decision import profile


def test_edge_rows_cover_nulls_unseen_levels_extremes_and_odd_texts(
    processed: Callable[..., Path],
) -> None:
    data = Splits.load(processed("binary") / "data" / "processed")
    edges = edge_splits(data)
    assert set(edges) == {
        "edge:nulls",
        "edge:unseen_categories",
        "edge:extreme_numbers",
        "edge:texts",
    }
    nulls = edges["edge:nulls"].columns
    assert np.isnan(nulls["amount"]).any() and np.isnat(nulls["created_at"]).any()
    assert any(v is None for v in nulls["channel"]) and any(v is None for v in nulls["review"])
    assert "__unseen_category__" in set(edges["edge:unseen_categories"].columns["channel"])
    assert 1e30 in set(edges["edge:extreme_numbers"].columns["amount"])
    texts = edges["edge:texts"].columns
    raw = set(texts["review"])
    assert "" in raw and any("\u0301" in t for t in raw) and any("\x00" in t for t in raw)
    assert any("🙂" in t for t in raw) and any("日本語" in t for t in raw)
    assert max(map(len, raw)) > 20_000
    assert [fold_text(t) for t in texts["review"]] == list(texts["review__folded"])
    for split in edges.values():  # prepared like any split, every row a valid record
        assert set(split.columns) == set(data.test.columns)
        assert all(len(v) == len(split) for v in split.columns.values())


def test_labels_may_differ_only_on_ties_with_the_threshold() -> None:
    p = profile("binary")
    decision = Decision(kind="threshold", objective="f1", threshold=0.5, positive="yes")
    native = np.array([[0.5, 0.5], [0.2, 0.8], [0.7, 0.3]])
    split = type("S", (), {"__len__": lambda self: 3})()
    want = Predictions(split, np.zeros(3), proba=native, labels=np.array([1, 1, 0]))  # type: ignore[arg-type]
    tie = native + np.array([[2e-6, -2e-6], [0, 0], [0, 0]])
    assert compare("m", "x", {"probabilities": tie}, want, decision, p, 1e-5).passed
    flipped = native[[0, 2, 1]]
    check = compare("m", "x", {"probabilities": flipped}, want, decision, p, 1e-5)
    assert not check.passed and check.label_mismatches == 2


def test_regression_tolerance_is_relative_to_the_value_and_nan_must_match() -> None:
    p = profile("regression")
    split = type("S", (), {"__len__": lambda self: 3})()
    want = Predictions(split, np.zeros(3), values=np.array([1e6, 0.5, np.inf]))  # type: ignore[arg-type]
    close = {"value": np.array([1e6 + 5.0, 0.5 + 5e-6, np.inf])}
    assert compare("m", "x", close, want, None, p, 1e-5).passed
    far = {"value": np.array([1e6 + 50.0, 0.5, np.inf])}
    assert not compare("m", "x", far, want, None, p, 1e-5).passed
    nan = {"value": np.array([1e6, 0.5, np.nan])}
    assert compare("m", "x", nan, want, None, p, 1e-5).max_abs_diff == np.inf
