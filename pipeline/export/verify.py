"""The parity checks per model kind: test split, batch sizes, edge rows, sequence lengths."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.common.dataset import Profile
from pipeline.common.errors import PipelineError
from pipeline.export import edges, text
from pipeline.export.config import ExportConfig
from pipeline.export.parity import Check, compare
from pipeline.export.tabular import GraphInput, feeds, native_frame

EVAL_BATCH = 64  # rows per ONNX Runtime / PyTorch call on the whole split


def _batches(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _cycle(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """Exactly n rows (repeating the frame when it is shorter)."""
    index = np.arange(n) % max(len(frame), 1)
    return frame.iloc[index].reset_index(drop=True)


def tabular_checks(
    name: str,
    sess: Any,
    pipeline: Any,
    inputs: list[GraphInput],
    test: pd.DataFrame,
    nullable: set[str],
    profile: Profile,
    cfg: ExportConfig,
) -> tuple[list[Check], np.ndarray]:
    """Every parity check of a tabular model; also returns ONNX probabilities on the test split."""

    def onnx_proba(frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(sess.run(["probabilities"], feeds(frame, inputs))[0])

    def native_proba(frame: pd.DataFrame, what: str) -> np.ndarray:
        try:
            return np.asarray(pipeline.predict_proba(native_frame(frame, profile)))
        except (ValueError, TypeError, AttributeError) as exc:
            raise PipelineError(
                f"{name}: the native model fails on {what} rows: {str(exc).splitlines()[0]}",
                where=f"models/{name}/model.skops",
                fix="handle that input in the model's Pipeline (e.g. an imputer), or mark the "
                "field non-nullable in the data contract",
            ) from None

    tol = cfg.proba_tolerance
    on_test = onnx_proba(test)
    checks = [compare(name, "test_split", on_test, native_proba(test, "test"), tol)]
    for size in cfg.batch_sizes:
        rows = _cycle(test, size)
        checks.append(
            compare(name, f"batch_{size}", onnx_proba(rows), native_proba(rows, "batch"), tol)
        )
    named = edges.tabular_edges(test, inputs, nullable, profile.text, cfg.long_text_chars, cfg.seed)
    for label, frame in named.items():
        checks.append(compare(name, label, onnx_proba(frame), native_proba(frame, label), tol))
    rows = edges.threshold_rows(test, pipeline, inputs, profile, cfg.seed)
    if len(rows):
        checks.append(
            compare(name, "edge:thresholds", onnx_proba(rows), native_proba(rows, "threshold"), tol)
        )
    return checks, on_test


def text_checks(
    sess: Any,
    loaded: text.TextModel,
    tokenizer_file: Path,
    texts: list[str],
    edge_texts: list[str],
    cfg: ExportConfig,
) -> tuple[list[Check], np.ndarray]:
    """Tokenizer and logits parity of the transformer; also returns ONNX test-split logits."""
    name, tol = "text_model", cfg.logits_tolerance

    def onnx_logits(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.asarray(sess.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0])

    def both(batch: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
        ids, mask = text.encode_reference(loaded.tokenizer, batch, max_length)
        return onnx_logits(ids, mask), text.torch_logits(loaded.model, ids, mask)

    checks = [
        _tokenizer_check(loaded, tokenizer_file, texts, "tokenizer:test_split"),
        _tokenizer_check(loaded, tokenizer_file, edge_texts, "tokenizer:edge_texts"),
    ]
    parts_onnx, parts_native = [], []
    for part in _batches(len(texts), EVAL_BATCH):
        ids, mask = text.encode_served(tokenizer_file, texts[part])
        parts_onnx.append(onnx_logits(ids, mask))
        parts_native.append(text.torch_logits(loaded.model, ids, mask))
    on_test = np.concatenate(parts_onnx) if parts_onnx else np.zeros((0, 0))
    native = np.concatenate(parts_native) if parts_native else np.zeros((0, 0))
    checks.append(compare(name, "test_split", on_test, native, tol))
    for size in cfg.batch_sizes:
        batch = [texts[i % len(texts)] for i in range(size)]
        checks.append(compare(name, f"batch_{size}", *both(batch, loaded.max_length), tol))
    longest = sorted(texts + edge_texts, key=len)[-16:]
    for length in sorted({*cfg.sequence_lengths, loaded.max_length}):
        checks.append(compare(name, f"seq_len_{length}", *both(longest, length), tol))
    checks.append(compare(name, "edge:texts", *both(edge_texts, loaded.max_length), tol))
    return checks, on_test


def _tokenizer_check(loaded: text.TextModel, path: Path, texts: list[str], label: str) -> Check:
    """Rows whose served token ids or mask differ from the training tokenizer's (must be 0)."""
    differing = 0
    for part in _batches(len(texts), EVAL_BATCH):
        ref_ids, ref_mask = text.encode_reference(loaded.tokenizer, texts[part], loaded.max_length)
        ids, mask = text.encode_served(path, texts[part])
        if ids.shape != ref_ids.shape:
            differing += len(texts[part])
            continue
        differing += int(((ids != ref_ids) | (mask != ref_mask)).any(axis=1).sum())
    return Check("text_model", label, len(texts), float(differing), 0.0, 0, 0)


def reference_check(
    name: str,
    ids: np.ndarray,
    proba: np.ndarray,
    reference: pd.DataFrame,
    id_column: str,
    tolerance: float,
) -> Check:
    """ONNX probabilities on the test split against the model stage's predictions_test.parquet."""
    columns = sorted(
        (c for c in reference.columns if c.startswith("proba_")), key=lambda c: int(c[6:])
    )
    if id_column not in reference.columns or len(columns) != proba.shape[1]:
        raise PipelineError(
            f"expected '{id_column}' and {proba.shape[1]} proba_<i> columns, found "
            f"{list(reference.columns)}",
            where=f"models/{name}/predictions_test.parquet",
            fix=f"re-run the model stage: dvc repro {name}",
        )
    ref = reference.set_index(id_column)
    missing = pd.Index(ids).difference(ref.index)
    if len(missing):
        raise PipelineError(
            f"{len(missing)} test ids have no reference prediction (e.g. {missing[0]!r})",
            where=f"models/{name}/predictions_test.parquet",
            fix=f"re-run the model stage on the current data: dvc repro {name}",
        )
    expected = ref.loc[ids, columns].to_numpy(np.float64)
    return compare(name, "reference:predictions_test", proba, expected, tolerance)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(z / z.sum(axis=1, keepdims=True))


def timed(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of `repeats` calls after one warm-up."""
    import time

    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))
