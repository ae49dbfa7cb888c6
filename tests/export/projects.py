"""Small projects on disk shaped like the real stage outputs, for the export and report tests.

A processed-data folder (profile.json and split Parquet files holding messy values: a
`dd-mm-YYYY HH.MM` datetime format, Unicode categories with rare levels, empty, long and
mixed-script texts, nulls) and, per model, what a model stage writes: `model.onnx`, `card.json`,
`predictions_{val,test}.parquet` (computed through `serving.runtime`, as the stage's parity
check guarantees), a tokenizer for the text model, plots as tiny PNGs. Model names are made up
on purpose: export and report must not depend on them.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.common import decision as decisions
from pipeline.common import metrics
from pipeline.common.data import LABEL
from serving.features import clean_text, normalise_categories, prepare_columns
from serving.runtime import load_model
from serving.schemas import (
    Calibration,
    ColumnStats,
    Decision,
    FeatureSpec,
    GraphInput,
    ModelCard,
    ModelEntry,
    Outputs,
    ParityCheck,
    ParityReport,
    Profile,
    SplitSettings,
    TargetStats,
    TextField,
    TextInput,
    TokenizerSpec,
    dump,
)

N_ROWS = 360
SPLITS = {"train": (0, 200), "val": (200, 280), "test": (280, 360)}
LABELS = {"binary": ["no", "yes"], "multiclass": ["billing", "bug", "praise"], "regression": []}
CITIES = ["Berlin", "MÜNCHEN", "são paulo", "東京", "  Köln ", "Zürich", "Oslo", "Lyon"]
WORDS = ["refund", "broken", "great", "late", "delivery", "love", "slow", "fast"]
WORDS += ["support", "thanks", "awful", "fine"]
ODD_TEXTS = ["", "   ", "ÉCOLE Straße 日本語 🙂 e\u0301", "!!!", "x " * 400]
SPEC = FeatureSpec(
    numeric=["amount", "is_member"],
    boolean=["is_member"],
    bounds={"amount": (0.0, None)},
    categorical=["channel", "city"],
    datetime=["created_at"],
    datetime_formats={"created_at": "%d-%m-%Y %H.%M"},
    text="review",
)
# Model name → the prepared columns its scikit-learn pipeline reads (None: the text model).
MODELS: dict[str, list[str] | None] = {
    "sturdy": ["amount", "is_member", "created_at__hour", "review__words", "channel", "city"],
    "shaky": ["is_member"],
    "reader": None,
}
SKIPPED = {"absent": "the data has no column this model needs"}


def raw_frame(rng: np.random.Generator) -> pd.DataFrame:
    """Raw columns as the ETL keeps them (cleaned, categories normalised)."""
    n = N_ROWS
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(1, 12))) for _ in range(n)]
    for i, odd in enumerate(ODD_TEXTS):
        texts[n - 1 - 7 * i] = odd
    frame = pd.DataFrame(
        {
            "ticket_id": np.arange(1000, 1000 + n, dtype=np.int64),
            "amount": np.round(rng.lognormal(3.0, 1.0, n), 2),
            "is_member": rng.integers(0, 2, n).astype(np.float64),
            "channel": normalise_categories(
                rng.choice(["Email", "phone", "web", "fax"], n, p=[0.5, 0.3, 0.18, 0.02])
            ),
            "city": normalise_categories(rng.choice(CITIES, n)),
            "created_at": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 10**7, n) // 60 * 60, unit="s"),
            "review": clean_text(texts),
        }
    )
    frame.loc[rng.random(n) < 0.1, "amount"] = np.nan
    frame.loc[rng.random(n) < 0.1, "channel"] = None
    frame.loc[rng.random(n) < 0.05, "created_at"] = pd.NaT
    frame.loc[rng.random(n) < 0.05, "review"] = None
    return frame


def target(frame: pd.DataFrame, task: str, rng: np.random.Generator) -> np.ndarray:
    """A target the features explain: amount, membership and words in the text."""
    text = frame["review"].fillna("")
    score = (
        0.03 * frame["amount"].fillna(20).to_numpy()
        + 1.5 * text.str.contains("broken|awful|refund").to_numpy()
        - 1.2 * frame["is_member"].to_numpy()
        + rng.normal(0, 0.5, len(frame))
    )
    if task == "regression":
        return np.round(50 + 20 * score, 2)
    if task == "binary":
        return (score > np.quantile(score, 0.7)).astype(np.int64)
    return np.digitize(score, np.quantile(score, [0.4, 0.75])).astype(np.int64)


def write_processed(root: Path, task: str, seed: int = 0) -> Profile:
    """Splits and profile.json under root/data/processed, as the ETL writes them."""
    rng = np.random.default_rng(seed)
    frame = raw_frame(rng)
    frame[LABEL] = target(frame, task, rng)
    out = root / "data" / "processed"
    out.mkdir(parents=True)
    for split, (lo, hi) in SPLITS.items():
        frame.iloc[lo:hi].reset_index(drop=True).to_parquet(out / f"{split}.parquet")
    labels = LABELS[task]
    profile = Profile(
        data="tickets",
        source="data/raw/tickets.csv",
        format="csv",
        task=task,
        target="cost" if task == "regression" else "outcome",
        id="ticket_id",
        labels=labels,
        positive="yes" if task == "binary" else None,
        features=SPEC,
        rows_in=N_ROWS + 3,
        rows={s: hi - lo for s, (lo, hi) in SPLITS.items()} | {"rejected": 3},
        rejected_reasons={"target is null": 2, "created_at: not a datetime": 1},
        columns=column_stats(frame),
        label_distribution={
            s: {labels[k]: int(np.sum(frame[LABEL].iloc[lo:hi] == k)) for k in range(len(labels))}
            for s, (lo, hi) in SPLITS.items()
        }
        if labels
        else {},
        target_stats={
            s: target_stats(frame[LABEL].iloc[lo:hi].to_numpy()) for s, (lo, hi) in SPLITS.items()
        }
        if task == "regression"
        else {},
        split=SplitSettings(method="stratified", train=0.55, val=0.22, test=0.23),
        seed=seed,
    )
    (out / "profile.json").write_text(dump(profile), encoding="utf-8")
    return profile


def column_stats(frame: pd.DataFrame) -> dict[str, ColumnStats]:
    out = {"ticket_id": ColumnStats(role="id", null_rate=0.0)}
    for name in ("amount", "is_member"):
        values = frame[name]
        out[name] = ColumnStats(
            role="numeric",
            null_rate=float(values.isna().mean()),
            min=float(values.min()),
            max=float(values.max()),
            mean=float(values.mean()),
            std=float(values.std()),
        )
    for name in ("channel", "city"):
        counts = frame[name].value_counts()
        out[name] = ColumnStats(
            role="categorical",
            null_rate=float(frame[name].isna().mean()),
            n_levels=len(counts),
            level_counts={str(k): int(v) for k, v in counts.items()},
        )
    dates = frame["created_at"]
    out["created_at"] = ColumnStats(
        role="datetime",
        null_rate=float(dates.isna().mean()),
        min=dates.min().isoformat(),
        max=dates.max().isoformat(),
    )
    out["review"] = ColumnStats(
        role="text",
        null_rate=float(frame["review"].isna().mean()),
        empty_rate=float((frame["review"] == "").mean()),
    )
    return out


def target_stats(y: np.ndarray) -> TargetStats:
    qs = {f"{q:.2f}": float(np.quantile(y, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)}
    return TargetStats(
        count=len(y),
        min=float(y.min()),
        max=float(y.max()),
        mean=float(y.mean()),
        std=float(y.std()),
        quantiles=qs,
    )


def split_columns(
    root: Path, profile: Profile, split: str
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Prepared columns, target and ids of a split (what a model stage trains on)."""
    from pipeline.common.data import read_rows

    rows = read_rows(root / "data" / "processed", split, profile)
    return prepare_columns(rows.raw, profile.features), rows.y, rows.ids


def tabular_graph(
    profile: Profile, columns: list[str], train: dict[str, np.ndarray], y: np.ndarray
) -> tuple[bytes, list[GraphInput]]:
    """A scikit-learn Pipeline on the prepared columns, converted with skl2onnx."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    strings = [c for c in columns if c in profile.features.categorical]
    numbers = [c for c in columns if c not in strings]
    frame = pd.DataFrame(
        {c: ["" if v is None else v for v in train[c]] for c in strings}
        | {c: train[c].astype(np.float32) for c in numbers}
    )
    steps = [("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers)]
    if strings:
        steps.append(("cat", OneHotEncoder(handle_unknown="ignore"), strings))
    head = Ridge() if profile.task == "regression" else LogisticRegression(max_iter=500)
    model = Pipeline([("prep", ColumnTransformer(steps)), ("head", head)]).fit(frame, y)
    types = [
        (c, StringTensorType([None, 1]) if c in strings else FloatTensorType([None, 1]))
        for c in columns
    ]
    options = {} if profile.task == "regression" else {id(head): {"zipmap": False}}
    onx = to_onnx(
        model, initial_types=types, options=options, target_opset={"": 17, "ai.onnx.ml": 3}
    )
    outputs = [o.name for o in onx.graph.output]
    rename = (
        {outputs[-1]: "probabilities"} if profile.task != "regression" else {outputs[0]: "value"}
    )
    for node in onx.graph.node:
        node.output[:] = [rename.get(o, o) for o in node.output]
    for out in onx.graph.output:
        out.name = rename.get(out.name, out.name)
    keep = set(rename.values())
    kept = [o for o in onx.graph.output if o.name in keep]
    del onx.graph.output[:]
    onx.graph.output.extend(kept)
    inputs = [
        GraphInput(name=c, column=c, dtype="string" if c in strings else "float32") for c in columns
    ]
    return onx.SerializeToString(), inputs


def text_graph(n_out: int, vocab: int, softmax: bool, seed: int) -> bytes:
    """Mean of token embeddings → linear head (→ softmax): a stand-in transformer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    dim = 4
    weights = [
        numpy_helper.from_array(rng.normal(size=(vocab, dim)).astype(np.float32), "embed"),
        numpy_helper.from_array(rng.normal(size=(dim, n_out)).astype(np.float32), "head"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
    ]
    last = "probabilities" if softmax else "value"
    nodes = [
        helper.make_node("Gather", ["embed", "input_ids"], ["tokens"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["tokens", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "axis1"], ["count"], keepdims=0),
        helper.make_node("Max", ["count", "one"], ["safe_count"]),
        helper.make_node("Div", ["summed", "safe_count"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "head"], ["logits" if softmax else last]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], [last], axis=1))
    ints = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
        for n in ("input_ids", "attention_mask")
    ]
    out = helper.make_tensor_value_info(last, TensorProto.FLOAT, ["batch", n_out])
    model = helper.make_model(
        helper.make_graph(nodes, "reader", ints, [out], weights),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tokenizer_json() -> str:
    """A word-level tokenizer over the fixture's words; [CLS] first, at most 16 tokens."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {"[PAD]": 0, "[CLS]": 1, "[UNK]": 2} | {
        w: i + 3 for i, w in enumerate([*WORDS, "channel", ":", "|"])
    }
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A", special_tokens=[("[CLS]", 1)]
    )
    return tok.to_str()


def write_model(
    root: Path, profile: Profile, name: str, columns: list[str] | None, seed: int = 0
) -> ModelCard:
    """models/trained/<name>/ as a model stage writes it (and a plot or two)."""
    out = root / "models" / "trained" / name
    out.mkdir(parents=True)
    data = {s: split_columns(root, profile, s) for s in ("train", "val", "test")}
    regression = profile.task == "regression"
    n_out = 1 if regression else profile.n_classes
    outputs = Outputs(value="value") if regression else Outputs(probabilities="probabilities")
    extra: dict[str, object] = {}
    if columns is None:
        tokenizer = tokenizer_json()
        (out / "tokenizer.json").write_text(tokenizer, encoding="utf-8")
        blob = text_graph(n_out, 64, not regression, seed)
        extra = {
            "kind": "text",
            "text_input": TextInput(
                text="review", fields=[TextField(name="channel", type="category")]
            ),
            "tokenizer": TokenizerSpec(
                file="tokenizer.json",
                sha256=hashlib.sha256(tokenizer.encode()).hexdigest(),
                max_length=16,
                pad_id=0,
            ),
        }
    else:
        blob, inputs = tabular_graph(profile, columns, data["train"][0], data["train"][1])
        extra = {"kind": "tabular", "inputs": inputs}
    (out / "model.onnx").write_bytes(blob)
    decision = None
    if profile.task == "binary":
        decision = Decision(kind="threshold", objective="f1", threshold=0.35, positive="yes")
    elif profile.task == "multiclass":
        decision = Decision(kind="argmax", objective="argmax", class_weights=[1.0, 1.0, 1.0])
    entry = ModelEntry(
        name=name,
        file="model.onnx",
        sha256=hashlib.sha256(blob).hexdigest(),
        outputs=outputs,
        decision=decision,
        calibration=None if regression else Calibration(method="none"),
        **extra,  # type: ignore[arg-type]
    )
    model = load_model(out, entry)
    scores = {}
    for split in ("val", "test"):
        columns_, y, ids = data[split]
        got = model.run(columns_)
        frame = pd.DataFrame({profile.id: ids, "y_true": y})
        if regression:
            frame["value"] = got["value"]
            scores[split] = metrics.regression(y.astype(float), got["value"], None)
        else:
            proba = got["probabilities"]
            assert decision is not None
            labels = decisions.labels(proba, decision, profile)
            frame["label"] = np.asarray(profile.labels, dtype=object)[labels]
            for k in range(proba.shape[1]):
                frame[f"proba_{k}"] = proba[:, k]
            exact = proba / proba.sum(axis=1, keepdims=True)  # float32 rows: sums within 1e-7
            scores[split] = metrics.classification(y, exact, labels, profile)
        frame.to_parquet(out / f"predictions_{split}.parquet", index=False)
    check = ParityCheck(
        model=name,
        name="test split",
        rows=len(data["test"][2]),
        max_abs_diff=0.0,
        tolerance=1e-5,
        passed=True,
    )
    card = ModelCard(
        name=name,
        task=profile.task,
        labels=profile.labels,
        entry=entry.model_copy(update={"metrics": scores}),
        parity=ParityReport(checks=[check], passed=True),
        importance={c: 1.0 / (i + 1) for i, c in enumerate(columns or [])},
    )
    (out / "card.json").write_text(dump(card), encoding="utf-8")
    plots = root / "plots" / name
    plots.mkdir(parents=True)
    for plot in ("calibration", "importance"):
        (plots / f"{plot}.png").write_bytes(tiny_png(seed + len(plot)))
    return card


def write_skipped(root: Path, profile: Profile, name: str, reason: str) -> None:
    out = root / "models" / "trained" / name
    out.mkdir(parents=True)
    (out / "card.json").write_text(
        dump(ModelCard(name=name, task=profile.task, skipped=reason)), encoding="utf-8"
    )
    (root / "plots" / name).mkdir(parents=True)


def tiny_png(seed: int) -> bytes:
    """An 8×8 PNG of one colour."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (seed * 40 % 256, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def build_project(root: Path, task: str) -> Path:
    """A whole project for `task`: processed data, every model in MODELS, one skipped model."""
    profile = write_processed(root, task)
    for seed, (name, columns) in enumerate(MODELS.items()):
        write_model(root, profile, name, columns, seed)
    for name, reason in SKIPPED.items():
        write_skipped(root, profile, name, reason)
    (root / "params.yaml").write_text(f"seed: 0\ntask: {task}\n", encoding="utf-8")
    return root
