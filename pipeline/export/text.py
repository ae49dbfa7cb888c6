"""The fine-tuned transformer to ONNX (dynamo exporter) and its tokenizer to `tokenizers` JSON.

The graph takes `input_ids` and `attention_mask` `[batch, sequence]` (both axes dynamic) and
returns `logits`. Tokenization stays outside the graph: the server runs the exported
`tokenizer.json` with the `tokenizers` library, truncation and padding already configured in it.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.errors import PipelineError

TOKENIZER_DIR = "tokenizer"
TOKENIZER_FILE = "tokenizer.json"
_EXAMPLE_SHAPE = (2, 8)  # batch 2 so that the exporter does not specialise the batch axis to 1


@dataclass(frozen=True)
class TextModel:
    """A loaded text model stage output: eager model, HF tokenizer, input spec, token limit."""

    model: Any
    tokenizer: Any
    spec: dict[str, Any]  # serving.text_input spec: {"text": ..., "fields": [...]}
    max_length: int
    config: dict[str, Any]  # text_config.json as written by the text model stage


def read_text_config(path: Path) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """(text input spec, max_length, whole file) from `models/text_model/text_config.json`."""
    if not path.is_file():
        raise PipelineError(
            "text_config.json not found", where=str(path), fix="dvc repro text_model"
        )
    raw = json.loads(path.read_text(encoding="utf-8"))
    spec = raw.get("text_input") or {"text": raw.get("text"), "fields": raw.get("fields", [])}
    if not isinstance(spec.get("text"), str) or not isinstance(raw.get("max_length"), int):
        raise PipelineError(
            f"expected 'max_length' (int) and the text input spec ('text', 'fields'), "
            f"found keys {sorted(raw)}",
            where=str(path),
            fix="re-run the text model stage: dvc repro text_model",
        )
    return {"text": spec["text"], "fields": list(spec.get("fields") or [])}, raw["max_length"], raw


def load_text_model(model_dir: Path) -> TextModel:
    """Load `models/text_model/hf` (safetensors only, no remote code) and its text config."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    spec, max_length, raw = read_text_config(model_dir / "text_config.json")
    hf_dir = model_dir / "hf"
    if not (hf_dir / "config.json").is_file():
        raise PipelineError("no saved model", where=str(hf_dir), fix="dvc repro text_model")
    model = AutoModelForSequenceClassification.from_pretrained(
        hf_dir, use_safetensors=True, trust_remote_code=False
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(hf_dir, trust_remote_code=False)
    if not getattr(tokenizer, "is_fast", False):
        raise PipelineError(
            "the saved tokenizer is not a fast (Rust) tokenizer, so it has no tokenizer.json",
            where=str(hf_dir),
            fix="save the tokenizer from AutoTokenizer(..., use_fast=True)",
        )
    return TextModel(model, tokenizer, spec, max_length, raw)


def _logits_module(model: Any) -> Any:
    import torch

    class LogitsOnly(torch.nn.Module):
        """`(input_ids, attention_mask) -> logits`: the graph's whole interface."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    return LogitsOnly(model).eval()


def export_module(model: Any, cls_only: bool) -> Any:
    """The module to export: the last layer pruned to [CLS] where the layout allows it."""
    from pipeline.export.clshead import cls_only_module, supports_cls_only

    if cls_only and supports_cls_only(model):
        return cls_only_module(model)
    if cls_only:
        logging.getLogger(__name__).info(
            "%s: not a BERT-layout classifier, exporting every position of the last layer",
            type(model).__name__,
        )
    return _logits_module(model)


def export_text_model(model: Any, target: Path, opset: int, cls_only: bool = True) -> None:
    """Export with torch.onnx's dynamo exporter: dynamic batch and sequence, one file."""
    import torch

    # The exporter logs one warning per torchvision op it cannot register; torchvision is unused.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    # onnx_ir's optimiser logs one INFO line per de-duplicated initializer (hundreds).
    logging.getLogger("onnx_ir").setLevel(logging.WARNING)
    logging.getLogger("onnxscript").setLevel(logging.WARNING)
    module = export_module(model, cls_only)
    example = torch.ones(_EXAMPLE_SHAPE, dtype=torch.long)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    axes = {0: batch, 1: sequence}
    with torch.no_grad(), warnings.catch_warnings():
        # Both inputs share the batch and sequence Dims on purpose, which the exporter notes once
        # per axis.
        warnings.filterwarnings("ignore", message=r".*shares the same shape constraints.*")
        program = torch.onnx.export(
            module,
            (example, example.clone()),
            dynamo=True,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_shapes={"input_ids": axes, "attention_mask": axes},
            opset_version=opset,
            optimize=True,
            external_data=False,
            verbose=False,
        )
    assert program is not None
    program.save(str(target), external_data=False)


def torch_logits(model: Any, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Eager PyTorch logits, the native side of the parity check."""
    import torch

    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    return np.asarray(out.logits.float().numpy())


def export_tokenizer(tokenizer: Any, target_dir: Path, max_length: int) -> dict[str, Any]:
    """Write tokenizer.json with truncation and batch padding built in; returns contract facts."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.enable_truncation(max_length=max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    backend.enable_padding(
        direction=getattr(tokenizer, "padding_side", "right"),
        pad_id=pad_id,
        pad_token=tokenizer.pad_token or "[PAD]",
    )
    target_dir.mkdir(parents=True, exist_ok=True)
    backend.save(str(target_dir / TOKENIZER_FILE))
    return {
        "tokenizer": f"{TOKENIZER_DIR}/{TOKENIZER_FILE}",
        "max_length": max_length,
        "truncation": True,
        "padding": "longest",
        "pad_id": int(pad_id),
    }


def encode_reference(tokenizer: Any, texts: list[str], max_length: int) -> tuple[Any, Any]:
    """Token ids and mask as the training stage makes them (transformers' fast tokenizer)."""
    enc = tokenizer(
        texts, truncation=True, max_length=max_length, padding=True, return_tensors="np"
    )
    return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)


def encode_served(tokenizer_file: Path, texts: list[str]) -> tuple[Any, Any]:
    """Token ids and mask as the server makes them (`tokenizers` with the exported JSON)."""
    from tokenizers import Tokenizer

    encodings = Tokenizer.from_file(str(tokenizer_file)).encode_batch(texts)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return ids, mask


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the MatMul weights (activations stay float at run time)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    # The dynamo graph's value_info keeps shapes from the example trace, which ORT's re-run of
    # shape inference rejects ("existing shape differs"); the quantizer re-infers them anyway.
    del model.graph.value_info[:]
    root = logging.getLogger()
    quiet = _QuietQuantizer()
    root.addFilter(quiet)
    try:
        quantize_dynamic(model, target, weight_type=QuantType.QInt8)
    finally:
        root.removeFilter(quiet)


class _QuietQuantizer(logging.Filter):
    """The quantizer logs per-tensor INFO notes and a pre-processing hint on the root logger.

    The hint's `quant_pre_process` cannot run on this graph (its symbolic shape inference fails
    on the dynamo export), so both are dropped; its warnings about anything else still show.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if "onnxruntime/quantization" not in record.pathname.replace("\\", "/"):
            return True
        return record.levelno > logging.INFO and "pre-processing" not in record.getMessage()
