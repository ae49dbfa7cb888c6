"""skl2onnx converters for steps whose stock converters (skl2onnx 1.20) disagree with scikit-learn:
`TfidfVectorizer` never counts an n-gram with a word pruned from the vocabulary, removes stop words
from whole texts and takes log(tf + 1) for `sublinear_tf`; `OneHotEncoder` refuses infrequent
levels on a single column; the `Imputer` node has no float64 kernel in ONNX Runtime."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.common.errors import PipelineError

TOKEN_PATTERN = r"[^ ]{2,}"  # words of two or more characters; the same in Python's re and RE2
SAFE_PATTERNS = (TOKEN_PATTERN, r"[^ ]+")


class _Nodes:
    """Nodes and constants with unique names, added to skl2onnx's container."""

    def __init__(self, scope: Any, container: Any) -> None:
        self.scope, self.container = scope, container

    def const(self, value: Any, dtype: Any = np.float64) -> str:
        from onnx import TensorProto, numpy_helper

        name = self.scope.get_unique_variable_name("const")
        array = np.asarray(value, dtype=dtype)
        if array.dtype == object:  # strings: skl2onnx copies only raw_data from a TensorProto
            content: Any = [str(v) for v in array.ravel()]
            self.container.add_initializer(name, TensorProto.STRING, list(array.shape), content)
        else:
            tensor = numpy_helper.from_array(array)
            self.container.add_initializer(name, tensor.data_type, list(array.shape), tensor)
        return name

    def __call__(self, op: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        """Add a node; returns the name of its last output (`n_outputs` of them, default 1)."""
        domain = attrs.pop("domain", "")
        names = [
            self.scope.get_unique_variable_name(op.lower())
            for _ in range(attrs.pop("n_outputs", 1))
        ]
        outs = [*names[:-1], out or names[-1]]
        name = self.scope.get_unique_operator_name(op)
        self.container.add_node(op, list(inputs), outs, op_domain=domain, name=name, **attrs)
        return outs[-1]


def check_vectorizer(vec: Any, where: str) -> None:
    """Refuse text-vectorizer settings the exported graph cannot reproduce on every text."""
    bad = {
        "analyzer": vec.analyzer != "word",
        "strip_accents": vec.strip_accents is not None,
        "preprocessor": vec.preprocessor is not None,
        "tokenizer": vec.tokenizer is not None,
        "lowercase": bool(vec.lowercase),
        "token_pattern": vec.token_pattern not in SAFE_PATTERNS,
        "binary": bool(vec.binary),
        "vocabulary": vec.vocabulary is not None,
    }
    found = [k for k, v in bad.items() if v]
    if found:
        raise PipelineError(
            f"TF-IDF setting {found[0]}={getattr(vec, found[0])!r} cannot be exported to ONNX "
            "with the same results on every text",
            where=where,
            fix=f"remove it: the text arrives folded (lower case, words joined by one space) and "
            f"is split with token_pattern {TOKEN_PATTERN!r}",
        )


def _pool(vocabulary: dict[str, int]) -> tuple[list[str], list[int], list[int], int]:
    """TfIdfVectorizer attributes: pool by n-gram length, counts, output indexes, min length.
    Every shorter run of words of a kept n-gram joins the pool, in columns that are dropped."""
    grams = {tuple(k.split(" ")): int(v) for k, v in vocabulary.items()}
    extra = sorted(
        {g[i : i + n] for g in grams for n in range(1, len(g)) for i in range(len(g) - n + 1)}
        - set(grams)
    )
    grams.update({gram: len(vocabulary) + k for k, gram in enumerate(extra)})
    top = max(len(g) for g in grams)
    pool: list[str] = []
    counts: list[int] = []
    indexes: list[int] = []
    for n in range(1, top + 1):
        counts.append(len(pool))
        for gram in sorted(g for g in grams if len(g) == n):
            pool.extend(gram)
            indexes.append(grams[gram])
    return pool, counts, indexes, min(len(g) for g in grams)


def convert_tfidf(scope: Any, operator: Any, container: Any) -> None:
    """TfidfVectorizer on the folded text column → float64 [N, len(vocabulary_)]."""
    from onnx import TensorProto

    vec = operator.raw_operator
    check_vectorizer(vec, "tfidf")
    g = _Nodes(scope, container)
    n_out = len(vec.vocabulary_)
    # Fills short rows after tokenising: no word of the folded text, and none of the pool's.
    words = {w for gram in vec.vocabulary_ for w in gram.split(" ")}
    pad = "#" * (1 + max((len(w) for w in words if set(w) == {"#"}), default=0))
    flat = g("Reshape", operator.inputs[0].full_name, g.const([-1], np.int64))
    tokens = g(
        "Tokenizer",
        flat,
        domain="com.microsoft",
        mark=0,
        mincharnum=1,
        pad_value=pad,
        tokenexp=vec.token_pattern,
    )
    stop = vec.get_stop_words()
    if stop:
        tokens = _drop_stop_words(g, tokens, sorted(stop), pad)
    pool, counts, indexes, shortest = _pool(vec.vocabulary_)
    counted = g(
        "TfIdfVectorizer",
        tokens,
        mode="TF",
        min_gram_length=shortest,
        max_gram_length=len(counts),
        max_skip_count=0,
        pool_strings=pool,
        ngram_counts=counts,
        ngram_indexes=indexes,
    )
    kept = g("Slice", counted, *(g.const([i], np.int64) for i in (0, n_out, 1)))
    x = g("Cast", kept, to=TensorProto.DOUBLE)
    if vec.sublinear_tf:  # scikit-learn: 1 + log(tf) on stored (non-zero) counts only
        positive = g("Greater", x, g.const(0.0))
        x = g("Where", positive, g("Add", g("Log", x), g.const(1.0)), g.const(0.0))
    if vec.use_idf:
        x = g("Mul", x, g.const(vec.idf_))
    if vec.norm is not None:
        size = g("Abs", x) if vec.norm == "l1" else g("Mul", x, x)
        total = g("MatMul", size, g.const(np.ones((n_out, 1))))
        norm = total if vec.norm == "l1" else g("Sqrt", total)
        # scikit-learn leaves all-zero rows as they are
        norm = g("Where", g("Equal", norm, g.const(0.0)), g.const(1.0), norm)
        x = g("Div", x, norm)
    g("Identity", x, out=operator.outputs[0].full_name)


def _drop_stop_words(g: _Nodes, tokens: str, stop: list[str], pad: str) -> str:
    """Stop words moved to the row's end as padding (scikit-learn drops them before n-grams)."""
    from onnx import TensorProto

    is_stop = g(
        "LabelEncoder",
        tokens,
        domain="ai.onnx.ml",
        keys_strings=stop,
        values_int64s=[1] * len(stop),
        default_int64=0,
    )
    width = g("Gather", g("Shape", tokens), g.const([1], np.int64), axis=0)
    position = g("Range", g.const(0, np.int64), g("Squeeze", width), g.const(1, np.int64))
    key = g("Add", g("Mul", is_stop, width), position)
    indices = g("TopK", key, width, n_outputs=2, axis=1, largest=0, sorted=1)
    moved = g("GatherElements", tokens, indices, axis=1)
    moved_stop = g("Cast", g("GatherElements", is_stop, indices, axis=1), to=TensorProto.BOOL)
    return g("Where", moved_stop, g.const([pad], object), moved)


def tfidf_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType

    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = DoubleTensorType([n, len(operator.raw_operator.vocabulary_)])


def convert_one_hot(scope: Any, operator: Any, container: Any) -> None:
    """OneHotEncoder on string columns, infrequent levels and unknown handling as scikit-learn."""
    from onnx import TensorProto

    enc = operator.raw_operator
    if enc.drop is not None:
        raise NotImplementedError("OneHotEncoder(drop=...) is not supported")
    g = _Nodes(scope, container)
    columns = [
        g("Gather", var.full_name, g.const([j], np.int64), axis=1)
        for var in operator.inputs
        for j in range(var.type.shape[1])
    ]
    blocks = []
    for j, column in enumerate(columns):
        codes, width, unknown = _one_hot_codes(enc, j)
        code = g(
            "LabelEncoder",
            column,
            domain="ai.onnx.ml",
            keys_strings=list(codes),
            values_int64s=list(codes.values()),
            default_int64=unknown,
        )
        hot = g("Equal", code, g.const(np.arange(width)[None, :], np.int64))
        blocks.append(g("Cast", hot, to=TensorProto.FLOAT))
    g("Concat", *blocks, axis=1, out=operator.outputs[0].full_name)


def _one_hot_codes(enc: Any, j: int) -> tuple[dict[str, int], int, int]:
    """Level → output column of column j, the block's width, and the column of unseen levels."""
    infrequent = enc.infrequent_categories_[j] if enc._infrequent_enabled else None
    rare = set() if infrequent is None else {str(c) for c in infrequent}
    levels = [str(c) for c in enc.categories_[j]]
    frequent = [c for c in levels if c not in rare]
    codes = {c: i for i, c in enumerate(frequent)} | dict.fromkeys(rare, len(frequent))
    width = len(frequent) + (1 if rare else 0)
    to_rare = enc.handle_unknown == "infrequent_if_exist" and rare
    return codes, width, len(frequent) if to_rare else -1


def one_hot_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import FloatTensorType

    enc = operator.raw_operator
    width = sum(_one_hot_codes(enc, j)[1] for j in range(len(enc.categories_)))
    operator.outputs[0].type = FloatTensorType([operator.inputs[0].get_first_dimension(), width])


def convert_imputer(scope: Any, operator: Any, container: Any) -> None:
    """Numeric SimpleImputer as Where(IsNaN(x), statistics, x), in the input's float type."""
    from skl2onnx.common.data_types import StringTensorType, guess_numpy_type
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    imp = operator.raw_operator
    if isinstance(operator.inputs[0].type, StringTensorType):
        convert_sklearn_imputer(scope, operator, container)
        return
    if imp.add_indicator or not np.isnan(imp.missing_values) or np.isnan(imp.statistics_).any():
        raise NotImplementedError(
            "SimpleImputer needs missing_values=nan, add_indicator=False, keep_empty_features=True"
        )
    g = _Nodes(scope, container)
    dtype = guess_numpy_type(operator.inputs[0].type)
    x = g("Concat", *(v.full_name for v in operator.inputs), axis=1)
    stats = g.const(imp.statistics_[None, :], dtype)
    g("Where", g("IsNaN", x), stats, x, out=operator.outputs[0].full_name)


def register_converters() -> None:
    """Register the converters above with skl2onnx (idempotent)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    for estimator, alias, shape, convert in (
        (TfidfVectorizer, "SklearnTfidfVectorizer", tfidf_shape, convert_tfidf),
        (OneHotEncoder, "SklearnOneHotEncoder", one_hot_shape, convert_one_hot),
        (SimpleImputer, "SklearnImputer", calculate_sklearn_imputer_output_shapes, convert_imputer),
    ):
        update_registered_converter(estimator, alias, shape, convert)
