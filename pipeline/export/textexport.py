"""The text model's export: graph, tokenizer, metadata, parity and the optional int8 variant."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.common.dataset import LABEL, Profile
from pipeline.export import contract as ct
from pipeline.export import edges, parity, text, verify
from pipeline.export.config import ExportConfig
from pipeline.export.tabular import _is_null
from serving.text_input import build_text, build_texts

log = logging.getLogger(__name__)
INT8_FILE = "text_model.int8.onnx"
_LATENCY_REPEATS = 30


def _columns(test: pd.DataFrame, spec: dict[str, Any]) -> dict[str, list[Any]]:
    names = [spec["text"], *(f["name"] for f in spec["fields"])]
    return {n: [None if _is_null(v) else v for v in test[n].to_list()] for n in names}


def _edge_texts(columns: dict[str, list[Any]], spec: dict[str, Any], chars: int) -> list[str]:
    first = {name: values[0] if values else None for name, values in columns.items()}
    blank = dict.fromkeys(columns)
    out = [build_text({**first, spec["text"]: t}, spec) for t in edges.text_edge_values(chars)]
    return [*out, build_text(blank, spec)]


def _optimize(source: Path, target: Path, level: str) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }[level]
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def _write_graph(
    loaded: text.TextModel, target: Path, cfg: ExportConfig, facts: dict[str, Any]
) -> None:
    import onnx

    raw = target.with_name(".raw-" + target.name)
    text.export_text_model(loaded.model, raw, cfg.text_opset, cfg.cls_only)
    if cfg.optimize != "none":
        optimized = target.with_name(".opt-" + target.name)
        _optimize(raw, optimized, cfg.optimize)
        optimized.replace(raw)
    graph = onnx.load(str(raw))
    ct.set_metadata(graph, facts)
    onnx.save_model(graph, str(target), save_as_external_data=False)
    raw.unlink()
    onnx.checker.check_model(str(target), full_check=True)


def export_text(
    cfg: ExportConfig,
    paths: Any,
    profile: Profile,
    test: pd.DataFrame,
    facts: dict[str, Any],
    out: Path,
) -> tuple[dict[str, Any], list[parity.Check], dict[str, Any]]:
    """Export the transformer and tokenizer into `out`; returns (contract entry, checks, extras)."""
    model_dir = paths.models_dir / "text_model"
    loaded = text.load_text_model(model_dir)
    tok = text.export_tokenizer(loaded.tokenizer, out / text.TOKENIZER_DIR, loaded.max_length)
    io = {
        "inputs": [
            {"name": "input_ids", "dtype": "int64"},
            {"name": "attention_mask", "dtype": "int64"},
        ],
        "outputs": {"logits": "logits"},
        "postprocess": "softmax",  # probabilities = softmax(logits) over the class axis
    }
    entry = {"file": "text_model.onnx", "kind": "text", **tok, "text_input": loaded.spec, **io}
    _write_graph(loaded, out / entry["file"], cfg, {**facts, **entry})
    columns = _columns(test, loaded.spec)
    texts = build_texts(columns, loaded.spec)
    edge_texts = _edge_texts(columns, loaded.spec, cfg.long_text_chars)
    tokenizer_file = out / tok["tokenizer"]
    sess = parity.session(out / entry["file"])
    checks, logits = verify.text_checks(sess, loaded, tokenizer_file, texts, edge_texts, cfg)
    reference = pd.read_parquet(model_dir / "predictions_test.parquet")
    checks.append(
        verify.reference_check(
            "text_model",
            test[profile.id].to_numpy(),
            verify.softmax(logits),
            reference,
            profile.id,
            cfg.reference_tolerance,
        )
    )
    extras: dict[str, Any] = {}
    if cfg.quantize:
        labels = test[LABEL].to_numpy(np.int64)
        extras["quantized"] = _quantized(out, entry["file"], tokenizer_file, texts, labels, logits)
    return entry, checks, extras


def _quantized(
    out: Path,
    fp32_file: str,
    tokenizer_file: Path,
    texts: list[str],
    labels: np.ndarray,
    fp32_logits: np.ndarray,
) -> dict[str, Any]:
    """int8 dynamic quantization: size, batch-1 latency and accuracy against fp32."""
    fp32_path, int8_path = out / fp32_file, out / INT8_FILE
    text.quantize_int8(fp32_path, int8_path)
    fp32, int8 = parity.session(fp32_path), parity.session(int8_path)
    parts = []
    for part in verify._batches(len(texts), verify.EVAL_BATCH):
        ids, mask = text.encode_served(tokenizer_file, texts[part])
        parts.append(
            np.asarray(int8.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0])
        )
    int8_logits = np.concatenate(parts)
    one = dict(
        zip(
            ("input_ids", "attention_mask"),
            text.encode_served(tokenizer_file, texts[:1]),
            strict=True,
        )
    )
    p32, p8 = verify.softmax(fp32_logits), verify.softmax(int8_logits)
    report = {
        "fp32_bytes": fp32_path.stat().st_size,
        "int8_bytes": int8_path.stat().st_size,
        "fp32_latency_ms_batch1": 1e3 * verify.timed(lambda: fp32.run(None, one), _LATENCY_REPEATS),
        "int8_latency_ms_batch1": 1e3 * verify.timed(lambda: int8.run(None, one), _LATENCY_REPEATS),
        "fp32_test_accuracy": float((p32.argmax(1) == labels).mean()),
        "int8_test_accuracy": float((p8.argmax(1) == labels).mean()),
        "label_agreement": float((p32.argmax(1) == p8.argmax(1)).mean()),
        "max_abs_proba_diff": float(np.abs(p32 - p8).max()),
        "rows": len(texts),
    }
    report["size_ratio"] = report["int8_bytes"] / report["fp32_bytes"]
    report["speedup_batch1"] = report["fp32_latency_ms_batch1"] / report["int8_latency_ms_batch1"]
    log.info(
        "int8 text model: %.2fx smaller, %.2fx faster at batch 1, label agreement %.4f",
        1 / report["size_ratio"],
        report["speedup_batch1"],
        report["label_agreement"],
    )
    contract = {
        "file": INT8_FILE,
        "sha256": ct.sha256(int8_path),
        "of": "text_model",
        "note": "not served by default; same inputs, outputs and tokenizer as text_model",
    }
    summary = {
        k: report[k]
        for k in (
            "size_ratio",
            "speedup_batch1",
            "label_agreement",
            "max_abs_proba_diff",
            "int8_test_accuracy",
            "fp32_test_accuracy",
        )
    }
    return {"report": report, "contract": contract, "summary": summary}
