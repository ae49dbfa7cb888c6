"""The converters that replace skl2onnx's own: TF-IDF on any text, one-hot, float64 imputation.

The TF-IDF property test draws corpora whose vocabulary limits prune words of kept n-grams (the
case skl2onnx 1.20's converter never counted) from arbitrary Unicode, folds them as
serving does, and compares the graph with scikit-learn on the corpus and on unseen texts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import TfidfVectorizer

from pipeline.common.converters import SAFE_PATTERNS, check_vectorizer, register_converters
from pipeline.common.errors import PipelineError
from pipeline.common.tabular import OPSET
from serving.features import fold_text
from serving.runtime import cpu_session

WORDS = [
    "refund",
    "late",
    "great",
    "not",
    "very",
    "the",
    "a",
    "of",
    "café",
    "naïve",
    "über",
    "日本語",
    "Ελλάδα",
    "добро",
    "x_y",
    "42",
    "İstanbul",
    "straße",
    "e\u0301cole",
    "🙂",
]
SEPARATORS = [" ", "  ", "\t", "\n", " \u3000 ", "\u00a0", ", ", "!"]


def convert(estimator: Any, inputs: list[tuple[str, Any]]) -> Any:
    from skl2onnx import convert_sklearn

    register_converters()
    model = convert_sklearn(estimator, initial_types=inputs, target_opset=OPSET)
    return cpu_session(model.SerializeToString())


def tfidf_graph(vec: TfidfVectorizer) -> Any:
    from skl2onnx.common.data_types import StringTensorType

    return convert(vec, [("text", StringTensorType([None, 1]))])


token = st.one_of(st.sampled_from(WORDS), st.sampled_from(WORDS), st.text(max_size=6))
document = st.lists(st.tuples(token, st.sampled_from(SEPARATORS)), max_size=14).map(
    lambda parts: "".join(w + s for w, s in parts)
)
params = st.fixed_dictionaries(
    {
        "ngram_range": st.sampled_from([(1, 1), (1, 2), (1, 3), (2, 2), (2, 3)]),
        "max_features": st.one_of(st.none(), st.integers(1, 12)),
        "min_df": st.integers(1, 3),
        "max_df": st.one_of(st.just(1.0), st.floats(0.3, 1.0), st.integers(2, 6)),
        "stop_words": st.one_of(
            st.none(), st.just("english"), st.lists(st.sampled_from(WORDS[:8]))
        ),
        "sublinear_tf": st.booleans(),
        "norm": st.sampled_from(["l2", "l1", None]),
        "use_idf": st.booleans(),
        "smooth_idf": st.booleans(),
        "token_pattern": st.sampled_from(SAFE_PATTERNS),
    }
)


def check_tfidf(corpus: list[str], unseen: list[str], kwargs: dict[str, Any]) -> None:
    folded = [fold_text(t) for t in corpus]
    vec = TfidfVectorizer(lowercase=False, dtype=np.float64, **kwargs)
    try:
        vec.fit(folded)
    except ValueError:  # empty vocabulary, or max_df below min_df: scikit-learn refuses too
        assume(False)
    texts = folded + [fold_text(t) for t in unseen]
    got = tfidf_graph(vec).run(None, {"text": np.array([[t] for t in texts], dtype=object)})[0]
    np.testing.assert_allclose(got, vec.transform(texts).toarray(), rtol=0, atol=1e-5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(document, min_size=2, max_size=25), st.lists(document, max_size=5), params)
def test_tfidf_graph_equals_scikit_learn_on_any_text(
    corpus: list[str], unseen: list[str], kwargs: dict[str, Any]
) -> None:
    check_tfidf(corpus, unseen, kwargs)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(document, min_size=2, max_size=60), st.lists(document, max_size=10), params)
def test_tfidf_graph_equals_scikit_learn_on_any_text_many_examples(
    corpus: list[str], unseen: list[str], kwargs: dict[str, Any]
) -> None:
    check_tfidf(corpus, unseen, kwargs)


def test_a_pruned_word_of_a_kept_bigram_still_counts() -> None:
    """The issue-14 case by hand: 'aa bb' kept while 'aa' is pruned by max_df."""
    corpus = ["aa bb"] * 3 + ["aa xx", "bb yy", "qq"]
    vec = TfidfVectorizer(
        lowercase=False,
        token_pattern=SAFE_PATTERNS[0],
        ngram_range=(1, 2),
        max_df=3,
        norm=None,
        use_idf=False,
        dtype=np.float64,
    ).fit(corpus)
    assert "aa bb" in vec.vocabulary_ and "aa" not in vec.vocabulary_
    got = tfidf_graph(vec).run(None, {"text": np.array([[t] for t in corpus], dtype=object)})[0]
    np.testing.assert_array_equal(got, vec.transform(corpus).toarray())


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"analyzer": "char_wb"}, "analyzer"),
        ({"analyzer": "char"}, "analyzer"),
        ({"strip_accents": "unicode"}, "strip_accents"),
        ({"lowercase": True}, "lowercase"),
        ({"token_pattern": r"(?u)\b\w\w+\b"}, "token_pattern"),
        ({"preprocessor": str.upper}, "preprocessor"),
        ({"binary": True}, "binary"),
    ],
)
def test_settings_that_cannot_match_are_refused_in_one_line(
    change: dict[str, Any], name: str
) -> None:
    kwargs = {"lowercase": False, "token_pattern": SAFE_PATTERNS[0], **change}
    with pytest.raises(PipelineError, match=f"TF-IDF setting {name}=") as caught:
        check_vectorizer(TfidfVectorizer(**kwargs), "configs/x: features.tfidf")
    assert "\n" not in str(caught.value)


def test_one_hot_with_infrequent_levels_on_a_single_column_equals_scikit_learn() -> None:
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    levels = rng.choice(
        ["a", "b", "c", "", "rare1", "rare2", "Ünï 🙂"],
        400,
        p=[0.4, 0.3, 0.2, 0.05, 0.02, 0.02, 0.01],
    )
    frame = pd.DataFrame({"c": levels.astype(object)})
    for unknown in ("ignore", "infrequent_if_exist"):
        enc = OneHotEncoder(handle_unknown=unknown, min_frequency=10).fit(frame)
        assert enc.infrequent_categories_[0] is not None
        rows = np.array([["a"], ["rare1"], ["Ünï 🙂"], [""], ["never seen"], ["b"]], dtype=object)
        got = convert(enc, [("c", StringTensorType([None, 1]))]).run(None, {"c": rows})[0]
        want = enc.transform(pd.DataFrame({"c": rows[:, 0]})).toarray()
        np.testing.assert_array_equal(got, want)


def test_float64_imputation_equals_scikit_learn() -> None:
    from skl2onnx.common.data_types import DoubleTensorType
    from sklearn.impute import SimpleImputer

    x = np.array([[1.0, np.nan], [np.nan, 2.5], [3.0, 1e-300], [np.nan, np.nan]])
    imp = SimpleImputer(strategy="median", keep_empty_features=True).fit(x)
    got = convert(imp, [("x", DoubleTensorType([None, 2]))]).run(None, {"x": x})[0]
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, imp.transform(x))
