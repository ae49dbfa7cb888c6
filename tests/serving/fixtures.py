"""Exported model directories for the serving tests, built without the pipeline.

`build(out_dir, task)` fits small scikit-learn pipelines on messy synthetic records (prepared
by `serving.features`, as the model stages do), converts them with skl2onnx (one [N, 1] input
per column, ZipMap off), writes a tiny text model as an ONNX graph of its own (embedding lookup,
masked mean pooling, a linear layer, softmax) with a `tokenizers` WordPiece tokenizer.json, and
writes contract.json through `serving.schemas.Contract`. It returns the offline reference
predictions (scikit-learn, and NumPy for the text graph) of `parity_records()`.

    python -m tests.serving.fixtures OUT_DIR [binary|multiclass|regression]
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from serving.features import prepare_records
from serving.schemas import (
    Calibration,
    Contract,
    Decision,
    FeatureSpec,
    FieldSchema,
    GraphInput,
    Lineage,
    MlflowRef,
    ModelEntry,
    Outputs,
    TextField,
    TextInput,
    TokenizerSpec,
    dump,
)
from serving.text_input import build_texts

CHANNELS = ["email", "phone", "web chat", "in store"]
WORDS = [
    "great",
    "awful",
    "fine",
    "love",
    "hate",
    "quick",
    "slow",
    "refund",
    "broken",
    "perfect",
    "okay",
    "bad",
    "good",
    "late",
    "👍",
    "café",
    "naïve",
]
DATETIME_FORMAT = "%d-%m-%Y %H.%M"
FEATURES = FeatureSpec(
    numeric=["amount", "is_member"],
    boolean=["is_member"],
    bounds={"amount": (0.0, 1e6)},
    categorical=["channel"],
    datetime=["created_at"],
    datetime_formats={"created_at": DATETIME_FORMAT},
    timezone="Europe/Amsterdam",
    text="review",
)
TEXT_INPUT = TextInput(text="review", fields=[TextField(name="channel", type="category")])
TEXT_MAX_TOKENS = 64
LABELS = {"binary": ["no", "yes"], "multiclass": ["low", "mid", "high"], "regression": []}
THRESHOLD = 0.35  # the binary baseline's "tuned" threshold: not 0.5, so tests can tell


def input_schema() -> list[FieldSchema]:
    return [
        FieldSchema(name="amount", type="number", nullable=True, min=0.0, max=1e6),
        FieldSchema(
            name="channel", type="category", nullable=True, categories=CHANNELS, max_length=200
        ),
        FieldSchema(name="is_member", type="boolean", nullable=False),
        FieldSchema(
            name="created_at", type="datetime", nullable=True, datetime_format=DATETIME_FORMAT
        ),
        FieldSchema(name="review", type="text", nullable=True, max_length=5000),
    ]


def make_records(n: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Raw JSON records (nulls, odd spellings, three datetime styles) and a numeric score."""
    rng = np.random.default_rng(seed)
    records, scores = [], []
    for i in range(n):
        amount = float(np.round(rng.lognormal(4, 1), 2)) if rng.random() > 0.1 else None
        channel = str(rng.choice(CHANNELS)) if rng.random() > 0.1 else None
        if channel and rng.random() < 0.2:
            channel = f"  {channel.upper()} "  # spelling the features normalise
        member = bool(rng.random() > 0.5)
        words = rng.choice(WORDS, size=int(rng.integers(0, 30))).tolist()
        day, hour = int(rng.integers(1, 29)), int(rng.integers(0, 24))
        created = [
            f"2024-{i % 12 + 1:02d}-{day:02d}T{hour:02d}:15:00",
            f"2024-{i % 12 + 1:02d}-{day:02d}T{hour:02d}:15:00+05:30",
            f"{day:02d}-{i % 12 + 1:02d}-2024 {hour:02d}.15",
            None,
        ][i % 4]
        score = (
            (amount or 50) / 100 + member + 0.6 * sum(w in ("great", "love", "good") for w in words)
        )
        scores.append(score - 0.5 * (channel == "phone") + rng.normal())
        records.append(
            {
                "amount": amount,
                "channel": channel,
                "is_member": member,
                "created_at": created,
                "review": " ".join(words) if i % 19 else None,
            }
        )
    return records, np.array(scores)


def parity_records() -> list[dict[str, Any]]:
    """Fresh records plus edge rows: nulls, unseen and oddly spelled categories, bounds, time
    zones, the custom datetime format, long, empty and non-Latin texts."""
    records, _ = make_records(60, seed=2)
    base = dict(records[0])
    edges = [
        {**base, "amount": None, "channel": None, "created_at": None, "review": None},
        {**base, "channel": "  WEB   Chat ", "amount": 0},
        {**base, "channel": "fax", "amount": 1e6},
        {**base, "amount": 2e6},  # outside the bounds: missing, as in the ETL
        {**base, "created_at": "2024-03-31T01:59:59+02:00", "is_member": 0},
        {**base, "created_at": "31-12-2024 23.59"},
        {**base, "review": "great " * 400},  # beyond the token limit
        {**base, "review": ""},
        {**base, "review": "Ünïcödé — 日本語のテキスト 🎉🎉 e\u0301 \t\n end"},
    ]
    return [*records, *edges]


def prepared_frame(records: list[dict[str, Any]], dtype: str = "float32") -> Any:
    """The training frame: prepared columns as the graph reads them ("" for null strings)."""
    import pandas as pd

    cols = prepare_records(records, FEATURES)
    frame = pd.DataFrame({name: cols[name] for name in _numeric()})
    frame = frame.astype(dtype)
    frame["channel"] = ["" if v is None else v for v in cols["channel"]]
    frame["review__folded"] = list(cols["review__folded"])
    return frame


def _numeric() -> list[str]:
    return [*FEATURES.numeric, *FEATURES.derived]


def _graph_inputs(dtype: str) -> list[GraphInput]:
    inputs = [GraphInput(name=c, column=c, dtype=dtype) for c in _numeric()]  # type: ignore[arg-type]
    inputs.append(GraphInput(name="channel", column="channel", dtype="string"))
    inputs.append(GraphInput(name="review__folded", column="review__folded", dtype="string"))
    return inputs


def _tabular(estimator: Any, frame: Any, y: np.ndarray, path: Path) -> tuple[Any, list[str]]:
    """Fit `estimator` behind the usual preprocessing, write its ONNX graph; (pipeline, outputs)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = _numeric()
    tfidf = TfidfVectorizer(token_pattern=r"[^ ]+", lowercase=False, min_df=2)
    pre = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["channel"]),
            ("text", tfidf, "review__folded"),
        ]
    )
    pipe = Pipeline([("pre", pre), ("model", estimator)]).fit(frame, y)
    number = DoubleTensorType if frame[numeric[0]].dtype == np.float64 else FloatTensorType
    types: list[Any] = [(c, number([None, 1])) for c in numeric]
    types += [
        ("channel", StringTensorType([None, 1])),
        ("review__folded", StringTensorType([None, 1])),
    ]
    options: dict[Any, Any] = {
        id(pipe.named_steps["pre"].named_transformers_["text"]): {"separators": [" "]}
    }
    if hasattr(estimator, "predict_proba"):
        options[id(estimator)] = {"zipmap": False}
    onx = convert_sklearn(
        pipe,
        path.stem,
        initial_types=types,
        options=options,
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    path.write_bytes(onx.SerializeToString())
    return pipe, [o.name for o in onx.graph.output]


def _with_interval(path: Path, value: str, half_width: float) -> None:
    """Append an `interval` output [N, 2] = value ± half_width (a stand-in for quantiles)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    graph = model.graph
    graph.initializer.append(helper.make_tensor("half_width", TensorProto.FLOAT, [], [half_width]))
    graph.node.extend(
        [
            helper.make_node("Sub", [value, "half_width"], ["lower"]),
            helper.make_node("Add", [value, "half_width"], ["upper"]),
            helper.make_node("Concat", ["lower", "upper"], ["interval"], axis=1),
        ]
    )
    graph.output.append(helper.make_tensor_value_info("interval", TensorProto.FLOAT, [None, 2]))
    onnx.save(model, str(path))


def _text_model(out_dir: Path, records: list[dict[str, Any]], n_classes: int) -> Any:
    """Write text_model.onnx and its tokenizer; return the NumPy reference (probabilities)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer

    texts = build_texts(prepare_records(records, FEATURES), TEXT_INPUT)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    tok.train_from_iterator(texts, WordPieceTrainer(vocab_size=200, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    (out_dir / "text_model").mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "text_model" / "tokenizer.json"))
    tok.enable_truncation(max_length=TEXT_MAX_TOKENS)

    rng = np.random.default_rng(0)
    vocab, dim = tok.get_vocab_size(), 8
    emb = rng.normal(size=(vocab, dim)).astype(np.float32)
    weight = rng.normal(size=(dim, n_classes)).astype(np.float32)
    bias = rng.normal(size=n_classes).astype(np.float32)
    init = [
        numpy_helper.from_array(a, n)
        for a, n in (
            (emb, "emb"),
            (weight, "w"),
            (bias, "b"),
            (np.array([2], np.int64), "two"),
            (np.array([1], np.int64), "one"),
            (np.array(1.0, np.float32), "one_f"),
        )
    ]
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["tokens"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "two"], ["mask3"]),
        helper.make_node("Mul", ["tokens", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "one"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask", "one"], ["count"], keepdims=1),
        helper.make_node("Max", ["count", "one_f"], ["safe_count"]),
        helper.make_node("Div", ["summed", "safe_count"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "w"], ["scores"]),
        helper.make_node("Add", ["scores", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_classes])
    graph = helper.make_graph(nodes, "text_model", [ids, mask], [out], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(out_dir / "text_model.onnx"))

    def reference(rows: list[dict[str, Any]]) -> np.ndarray:
        encoded = tok.encode_batch(build_texts(prepare_records(rows, FEATURES), TEXT_INPUT))
        logits = np.array(
            [emb[e.ids].astype(np.float64).mean(axis=0) @ weight + bias for e in encoded]
        )
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    return reference


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entry(name: str, out_dir: Path, version: str, **fields: Any) -> ModelEntry:
    path = out_dir / fields.pop("file", f"{name}.onnx")
    return ModelEntry(
        name=name,
        file=path.name,
        sha256=_sha(path),
        metrics={"val": {"score": 0.5}},
        mlflow=MlflowRef(
            run_id=version * 32, experiment_id="1", registered_model=f"{name}-onnx", version=version
        ),
        version=version,
        **fields,
    )


def build(out_dir: Path, task: str = "binary") -> dict[str, Any]:
    """Write the models and contract.json into out_dir; return the reference predictions."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    out_dir.mkdir(parents=True, exist_ok=True)
    records, scores = make_records(600, seed=1)
    dtype = "float32"
    frame = prepared_frame(records, dtype)
    check = parity_records()
    check_frame = prepared_frame(check, dtype)
    labels = LABELS[task]
    reference: dict[str, Any] = {"records": check}
    entries: dict[str, ModelEntry] = {}
    inputs = _graph_inputs(dtype)
    if task == "regression":
        y = scores * 10
        ridge, _ = _tabular(Ridge(), frame, y, out_dir / "baseline.onnx")
        _with_interval(out_dir / "baseline.onnx", "variable", 1.5)
        forest, _ = _tabular(
            RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0),
            frame,
            y,
            out_dir / "forest.onnx",
        )
        reference["baseline"] = ridge.predict(check_frame).tolist()
        reference["forest"] = forest.predict(check_frame).tolist()
        entries["baseline"] = _entry(
            "baseline",
            out_dir,
            "3",
            kind="tabular",
            inputs=inputs,
            outputs=Outputs(value="variable", interval="interval"),
        )
        entries["forest"] = _entry(
            "forest", out_dir, "1", kind="tabular", inputs=inputs, outputs=Outputs(value="variable")
        )
    else:
        y = np.digitize(scores, np.quantile(scores, np.linspace(0, 1, len(labels) + 1)[1:-1]))
        for name, estimator, version in (
            ("baseline", LogisticRegression(max_iter=500), "3"),
            ("forest", RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0), "1"),
        ):
            pipe, _ = _tabular(estimator, frame, y, out_dir / f"{name}.onnx")
            reference[name] = pipe.predict_proba(check_frame).tolist()
            entries[name] = _entry(
                name,
                out_dir,
                version,
                kind="tabular",
                inputs=inputs,
                outputs=Outputs(probabilities="probabilities"),
                decision=_decision(task, labels, name),
                calibration=Calibration(method="none"),
            )
        text_reference = _text_model(out_dir, records, len(labels))
        reference["text_model"] = text_reference(check).tolist()
        tokenizer = TokenizerSpec(
            file="text_model/tokenizer.json",
            sha256=_sha(out_dir / "text_model" / "tokenizer.json"),
            max_length=TEXT_MAX_TOKENS,
            pad_id=0,
        )
        entries["text_model"] = _entry(
            "text_model",
            out_dir,
            "2",
            kind="text",
            text_input=TEXT_INPUT,
            tokenizer=tokenizer,
            outputs=Outputs(probabilities="probabilities"),
            decision=_decision(task, labels, "text_model"),
        )
    contract = Contract(
        task=task,  # type: ignore[arg-type]
        target={"regression": "cost"}.get(task, "outcome"),
        labels=labels,
        id="ticket_id",
        input_schema=input_schema(),
        features=FEATURES,
        models=entries,
        champion="baseline",
        champion_metric="val.rmse" if task == "regression" else "val.roc_auc",
        lineage=Lineage(
            git_commit="0" * 40,
            git_dirty=True,
            data={"/home/someone/data/processed/train.parquet": "d" * 32},
            params="e" * 32,
        ),
    )
    (out_dir / "contract.json").write_text(dump(contract))
    return reference


def _decision(task: str, labels: list[str], name: str) -> Decision:
    if task == "binary":
        threshold = THRESHOLD if name == "baseline" else 0.5
        return Decision(kind="threshold", objective="f1", threshold=threshold, positive=labels[-1])
    return Decision(kind="argmax", objective="accuracy", class_weights=[1.0, 1.3, 0.8])


if __name__ == "__main__":
    target = Path(sys.argv[1])
    result = build(target, sys.argv[2] if len(sys.argv) > 2 else "binary")
    (target.parent / f"{target.name}.reference.json").write_text(json.dumps(result))
    print(f"models written to {target}")


def build_apart(out_dir: Path, task: str = "binary") -> dict[str, Any]:
    """`build` in a fresh interpreter. Once a test has imported the pipeline's converters they
    replace skl2onnx's stock TF-IDF converter for the whole process, and these graphs are made
    with the stock one (its `separators` option), whatever ran before."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference.json"
        code = (
            "import json, sys; from pathlib import Path; from tests.serving.fixtures import build; "
            "Path(sys.argv[3]).write_text(json.dumps(build(Path(sys.argv[1]), sys.argv[2])))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(out_dir), task, str(reference)],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"building the {task} fixtures failed:\n{done.stderr[-3000:]}")
        return dict(json.loads(reference.read_text()))
