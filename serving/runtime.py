"""ONNX Runtime sessions for the exported models: raw records in, class probabilities out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from serving import inputs
from serving.contract import Contract, ContractError, ModelSpec, verified_bytes
from serving.features import FeatureSpec
from serving.text_batches import length_groups, pad
from serving.text_input import validate_spec

Records = list[dict[str, Any]]
# ONNX Runtime's fused SkipLayerNormalization kernel is slower than the Add and
# LayerNormalization it replaces: without the fusion the transformer's batch-1 latency drops by
# 8% (17.0 to 15.6 ms at 64 tokens on one AVX-512 core), and its logits move by 3e-8.
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


def session_options(threads: int) -> ort.SessionOptions:
    """One session's options: a fixed thread count and no spinning (cores are shared)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn the cores that the event loop needs between requests.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def cpu_session(model: bytes | str, options: ort.SessionOptions) -> ort.InferenceSession:
    """A CPU session for a model file or its bytes, optimised as the server runs every graph."""
    return ort.InferenceSession(
        model,
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(DISABLED_OPTIMIZERS),
    )


def _session(contract: Contract, spec: ModelSpec, threads: int) -> ort.InferenceSession:
    data = verified_bytes(contract, spec)  # checked bytes are the bytes loaded: no re-read race
    try:
        return cpu_session(data, session_options(threads))
    except Exception as exc:  # ORT raises its own exception types for corrupt graphs
        raise ContractError(
            f"{spec.file}: ONNX Runtime cannot load it ({exc}); fix: re-run the export stage"
        ) from None


@dataclass
class TabularModel:
    """A tabular ONNX graph: one [N, 1] input per model column, `probabilities` [N, C] out."""

    spec: ModelSpec
    session: ort.InferenceSession
    columns: list[tuple[str, str, str, str]]  # (graph input, column, dtype, missing string)
    features: FeatureSpec

    kind = "tabular"

    @classmethod
    def load(cls, contract: Contract, spec: ModelSpec) -> TabularModel:
        session = _session(contract, spec, threads=1)  # tiny graphs: threads only add overhead
        graph_inputs = {i.name for i in session.get_inputs()}
        columns = [
            (
                i["name"],
                i.get("column", i["name"]),
                i.get("dtype", "float32"),
                str(i.get("null", "")) if i.get("dtype") == "string" else "",
            )
            for i in spec.inputs
        ]
        unknown = sorted(graph_inputs ^ {c[0] for c in columns})
        if unknown:
            raise ContractError(
                f"{spec.file}: graph inputs and contract inputs differ on "
                f"{unknown}; fix: re-run the export stage"
            )
        return cls(spec, session, columns, _features(contract))

    def predict(self, records: Records) -> np.ndarray:
        """Class probabilities [N, C] (float64) for validated raw records."""
        table = inputs.model_columns(records, self.features)
        feed = {
            name: inputs.column_array(table[column], dtype, missing)
            for name, column, dtype, missing in self.columns
        }
        (proba,) = self.session.run([self.spec.output], feed)
        return np.asarray(proba, dtype=np.float64)


@dataclass
class TextModel:
    """The transformer: tokenized text in, logits out, softmax here."""

    spec: ModelSpec
    session: ort.InferenceSession
    tokenizer: Tokenizer
    text_spec: Mapping[str, Any]
    features: FeatureSpec
    feed_names: list[str]
    pad_id: int
    pad_left: bool

    kind = "text"

    @classmethod
    def load(cls, contract: Contract, spec: ModelSpec, threads: int) -> TextModel:
        session = _session(contract, spec, threads)
        text_spec = spec.raw.get("text_input") or {}
        try:
            validate_spec(text_spec)
        except ValueError as exc:
            raise ContractError(f"models.{spec.name}.text_input: {exc}") from None
        if spec.raw.get("postprocess", "softmax") != "softmax":
            raise ContractError(
                f"models.{spec.name}.postprocess: only 'softmax' is supported, "
                f"found {spec.raw['postprocess']!r}"
            )
        tokenizer, pad_id, pad_left = _tokenizer(contract, spec)
        feed_names = [i.name for i in session.get_inputs()]
        if not {"input_ids", "attention_mask"} >= set(feed_names):
            raise ContractError(
                f"{spec.file}: expected inputs input_ids/attention_mask, found {feed_names}"
            )
        return cls(
            spec, session, tokenizer, text_spec, _features(contract), feed_names, pad_id, pad_left
        )

    def predict(self, records: Records) -> np.ndarray:
        """Class probabilities [N, C] (float64) for validated raw records."""
        texts = inputs.model_texts(records, self.features, self.text_spec)
        ids = [e.ids for e in self.tokenizer.encode_batch(texts)]
        logits: np.ndarray | None = None
        # Texts of similar length share a call, so short texts don't pay for a long one's padding.
        for group in length_groups([len(i) for i in ids]):
            input_ids, mask = pad([ids[k] for k in group], self.pad_id, self.pad_left)
            arrays = {"input_ids": input_ids, "attention_mask": mask}
            (out,) = self.session.run([self.spec.output], {n: arrays[n] for n in self.feed_names})
            if logits is None:
                logits = np.empty((len(ids), out.shape[1]), dtype=np.float64)
            logits[group] = out
        assert logits is not None
        return softmax(logits)


def _features(contract: Contract) -> FeatureSpec:
    try:
        return inputs.feature_spec(contract.raw.get("features") or {})
    except (TypeError, ValueError) as exc:
        raise ContractError(f"{contract.path}: key 'features': {exc}; fix: re-run export") from None


def _tokenizer(contract: Contract, spec: ModelSpec) -> tuple[Tokenizer, int, bool]:
    """The truncating tokenizer, without padding (`text_batches.pad` pads), its pad id and side."""
    path = contract.directory / str(spec.raw.get("tokenizer", "tokenizer/tokenizer.json"))
    if not path.is_file():
        raise ContractError(f"{path} (tokenizer of {spec.name}) not found; fix: re-run export")
    tokenizer = Tokenizer.from_file(str(path))
    max_length = int(spec.raw.get("max_length") or 512)
    tokenizer.enable_truncation(max_length=max_length)
    padding = tokenizer.padding or {}
    pad_token = padding.get("pad_token", "[PAD]")
    pad_id = padding.get("pad_id", tokenizer.token_to_id(pad_token) or 0)
    tokenizer.no_padding()
    return tokenizer, int(pad_id), padding.get("direction") == "left"


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


Model = TabularModel | TextModel


def load_model(contract: Contract, spec: ModelSpec, text_threads: int) -> Model:
    """Load one model (checksum first) as described by its contract entry."""
    if spec.kind == "text":
        return TextModel.load(contract, spec, text_threads)
    return TabularModel.load(contract, spec)


def warmup_records(contract: Contract) -> Records:
    """Two valid records (all nulls where allowed, then typical values) for the warm-up runs."""
    typical: dict[str, Any] = {}
    empty: dict[str, Any] = {}
    for field in contract.input_schema:
        typical[field.name] = {
            "number": 1.0,
            "boolean": True,
            "datetime": "2024-01-01T12:00:00",
            "category": field.categories[0] if field.categories else "warm-up",
            "text": "a short warm-up text " * 8,
        }[field.type]
        empty[field.name] = None if field.nullable else typical[field.name]
    return [typical, empty]


def warm_up(model: Model, records: Records, n_classes: int, runs: int = 3) -> None:
    """Run a few predictions so the first real request pays no lazy-initialisation cost."""
    for _ in range(runs):
        for batch in (records[:1], records * 4):
            proba = model.predict(batch)
            if proba.shape != (len(batch), n_classes) or not np.isfinite(proba).all():
                raise ContractError(
                    f"model {model.spec.name}: warm-up gave invalid probabilities "
                    f"(shape {proba.shape}, {n_classes} labels); fix: re-run the export stage"
                )
