"""Small exported models for the serving tests and benchmark, laid out like `models/export/`.

`build(out_dir)` fits a LogisticRegression and a LightGBM pipeline on synthetic data, converts
them with skl2onnx (one [N, 1] input per column, ZipMap off, output `probabilities`), exports a
tiny random BERT with `torch.onnx.export(dynamo=True)` plus a tokenizer trained with
`tokenizers`, and writes `contract.json` as in docs/architecture.md. Training libraries are used
here only; the server never imports them.

    python tests/serving/fixtures.py OUT_DIR      # build once, e.g. for bench/http_serving.py
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from serving.features import FeatureSpec, prepare_records

LABELS = ["no", "yes"]
CHANNELS = ["email", "phone", "web chat"]
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
]
FEATURES = FeatureSpec(
    numeric=["amount", "is_member"],
    boolean=["is_member"],
    bounds={"amount": [0.0, 1e6]},
    categorical=["channel"],
    datetime=["created_at"],
    text="review",
)
TEXT_SPEC = {"text": "review", "fields": [{"name": "channel", "type": "category"}]}
TEXT_MAX_TOKENS = 64
MISSING_CATEGORY = ""  # what the server feeds for a null category (contract inputs[].null)


def input_schema() -> list[dict[str, Any]]:
    """The contract's raw input schema for the synthetic data."""
    return [
        {"name": "amount", "type": "number", "nullable": True, "min": 0.0, "max": 1e6},
        {
            "name": "channel",
            "type": "category",
            "nullable": True,
            "categories": CHANNELS,
            "max_length": 200,
        },
        {"name": "is_member", "type": "boolean", "nullable": False},
        {"name": "created_at", "type": "datetime", "nullable": True},
        {"name": "review", "type": "text", "nullable": True, "max_length": 5000},
    ]


def make_records(n: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Raw JSON records (with nulls and edge values) and their labels."""
    rng = np.random.default_rng(seed)
    records, labels = [], []
    for i in range(n):
        amount = float(np.round(rng.lognormal(4, 1), 2)) if rng.random() > 0.1 else None
        channel = str(rng.choice(CHANNELS)) if rng.random() > 0.1 else None
        member = bool(rng.random() > 0.5)
        words = rng.choice(WORDS, size=int(rng.integers(0, 30))).tolist()
        review = " ".join(words) if rng.random() > 0.05 else None
        created = (
            f"2024-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}T"
            f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:00"
        )
        score = (
            (amount or 50) / 100
            + member
            + 0.6 * sum(w in ("great", "love", "good") for w in words)
            - 0.5 * (channel == "phone")
        )
        labels.append(int(score + rng.normal() > 1.5))
        records.append(
            {
                "amount": amount,
                "channel": channel,
                "is_member": member,
                "created_at": created if i % 7 else None,
                "review": review,
            }
        )
    return records, np.array(labels)


def model_frame(records: list[dict[str, Any]]) -> Any:
    """The training frame: cleaned raw columns plus derived features, as the ETL writes them."""
    import pandas as pd

    cols = prepare_records(records, FEATURES)
    frame = pd.DataFrame({k: v for k, v in cols.items() if k != "created_at"})
    frame["channel"] = frame["channel"].fillna(MISSING_CATEGORY).astype(object)
    return frame


def numeric_columns() -> list[str]:
    """Numeric model inputs: raw numeric then derived, as in the profile's `model_numeric`."""
    return [*FEATURES.numeric, *FEATURES.derived]


def _tabular_onnx(estimator: Any, frame: Any, labels: np.ndarray, name: str) -> tuple[bytes, Any]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = numeric_columns()
    pre = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["channel"]),
        ]
    )
    pipe = Pipeline([("pre", pre), ("model", estimator)])
    frame = frame[[*numeric, "channel"]].copy()
    frame[numeric] = frame[numeric].astype(np.float32)
    pipe.fit(frame, labels)
    types = [(c, FloatTensorType([None, 1])) for c in numeric]
    types.append(("channel", StringTensorType([None, 1])))
    onx = convert_sklearn(
        pipe,
        name,
        initial_types=types,
        target_opset={"": 17, "ai.onnx.ml": 3},
        options={id(estimator): {"zipmap": False}},
    )
    assert [o.name for o in onx.graph.output] == ["label", "probabilities"]
    return onx.SerializeToString(), pipe


def _register_lightgbm() -> None:
    from lightgbm import LGBMClassifier
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )


def _text_model(out_dir: Path, records: list[dict[str, Any]]) -> Any:
    """Write text_model.onnx and the tokenizer; return a function giving torch probabilities."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertConfig, BertForSequenceClassification

    from serving.text_input import build_texts

    texts = build_texts(prepare_records(records, FEATURES), TEXT_SPEC)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, WordPieceTrainer(vocab_size=300, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    (out_dir / "tokenizer").mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer" / "tokenizer.json"))

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    config.num_labels = len(LABELS)
    model = BertForSequenceClassification(config).eval()

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).logits

    ids = torch.ones((2, 16), dtype=torch.int64)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence", max=128)
    with warnings.catch_warnings():  # exporter chatter about axis names and deprecations
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            Logits().eval(),
            (ids, torch.ones_like(ids)),
            dynamo=True,
            verbose=False,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
        )
    assert program is not None
    program.save(str(out_dir / "text_model.onnx"), external_data=False)
    tok.enable_truncation(max_length=TEXT_MAX_TOKENS)

    @torch.inference_mode()
    def reference(rows: list[dict[str, Any]]) -> np.ndarray:
        encoded = tok.encode_batch(build_texts(prepare_records(rows, FEATURES), TEXT_SPEC))
        proba = []
        for e in encoded:  # one text at a time: no padding in the reference
            ids = torch.tensor([e.ids])
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
            proba.append(torch.softmax(logits.double(), dim=1)[0].numpy())
        return np.array(proba)

    return reference


def _quantize(source: Path, target: Path) -> None:
    """int8 dynamic quantization, as the export stage does it."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    del model.graph.value_info[:]  # stale trace shapes that the quantizer's inference rejects
    quantize_dynamic(model, target, weight_type=QuantType.QInt8)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parity_records() -> list[dict[str, Any]]:
    """Records the parity test sends: fresh synthetic rows plus edge rows."""
    records, _ = make_records(60, seed=2)
    base = dict(records[0])
    edges = [
        {**base, "amount": None, "channel": None, "created_at": None, "review": None},
        {**base, "channel": "  WEB   Chat ", "amount": 0},  # spelling normalised like the ETL
        {**base, "channel": "fax", "amount": 1e6},  # unseen category, value at the bound
        {**base, "amount": 2e6},  # outside the bounds: becomes missing, as in the ETL
        {**base, "created_at": "2024-03-01T23:59:59+02:00", "is_member": 0},
        {**base, "review": "great " * 400},  # far beyond the token limit
        {**base, "review": ""},
    ]
    return [*records, *edges]


def build(out_dir: Path, *, text: bool = True) -> dict[str, Any]:
    """Write ONNX files, tokenizer and contract.json into out_dir; return the contract.

    The offline reference probabilities of `parity_records()` (scikit-learn / LightGBM
    `predict_proba`, torch softmax) go to `<out_dir>.reference.json`, outside the models dir.
    """
    from lightgbm import LGBMClassifier
    from sklearn.linear_model import LogisticRegression

    out_dir.mkdir(parents=True, exist_ok=True)
    records, labels = make_records(600, seed=1)
    frame = model_frame(records)
    check = parity_records()
    check_frame = model_frame(check)
    _register_lightgbm()
    tabular = {
        "baseline": LogisticRegression(max_iter=500),
        "lightgbm": LGBMClassifier(n_estimators=30, num_leaves=7, min_child_samples=5, verbose=-1),
    }
    inputs = [{"name": c, "column": c, "dtype": "float32"} for c in numeric_columns()]
    inputs.append(
        {"name": "channel", "column": "channel", "dtype": "string", "null": MISSING_CATEGORY}
    )
    models: dict[str, Any] = {}
    reference: dict[str, Any] = {"records": check}
    for name, estimator in tabular.items():
        onx, pipe = _tabular_onnx(estimator, frame, labels, name)
        (out_dir / f"{name}.onnx").write_bytes(onx)
        columns = [*numeric_columns(), "channel"]
        typed = check_frame[columns].astype({c: np.float32 for c in numeric_columns()})
        reference[name] = pipe.predict_proba(typed).tolist()
        models[name] = {
            "file": f"{name}.onnx",
            "kind": "tabular",
            "inputs": inputs,
            "outputs": {"probabilities": "probabilities"},
            "metrics": {"val": {}},
            "mlflow": {"run_id": "0" * 32, "registered_model": f"{name}-onnx", "version": "1"},
        }
    if text:
        torch_proba = _text_model(out_dir, records)
        reference["text_model"] = torch_proba(check).tolist()
        models["text_model"] = {
            "file": "text_model.onnx",
            "kind": "text",
            "tokenizer": "tokenizer/tokenizer.json",
            "text_input": TEXT_SPEC,
            "max_length": TEXT_MAX_TOKENS,
            "inputs": [
                {"name": "input_ids", "dtype": "int64"},
                {"name": "attention_mask", "dtype": "int64"},
            ],
            "outputs": {"logits": "logits"},
            "metrics": {"val": {}},
            "mlflow": {"run_id": "1" * 32, "registered_model": "text_model-onnx", "version": "2"},
        }
    quantized = {}
    if text:
        _quantize(out_dir / "text_model.onnx", out_dir / "text_model.int8.onnx")
        quantized["text_model"] = {
            "file": "text_model.int8.onnx",
            "of": "text_model",
            "sha256": _sha(out_dir / "text_model.int8.onnx"),
        }
    for entry in models.values():
        entry["sha256"] = _sha(out_dir / entry["file"])
    contract = {
        "schema_version": 1,
        "task": "binary",
        "labels": LABELS,
        "id": "ticket_id",
        "input_schema": input_schema(),
        "features": FEATURES.to_json(),
        "models": models,
        "champion": "lightgbm",
        "quantized": quantized,
        "lineage": {"git_commit": "0" * 40, "git_dirty": False, "data": {}, "params": ""},
    }
    (out_dir / "contract.json").write_text(json.dumps(contract, indent=2))
    Path(f"{out_dir}.reference.json").write_text(json.dumps(reference))
    return contract


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    build(Path(sys.argv[1]))
    print(f"fixture models written to {sys.argv[1]}")
