"""The network to one ONNX graph (`input_ids`, `attention_mask` [batch, sequence] → `probabilities`
or `value`) and its tokenizer to `tokenizer.json`, which the server runs outside the graph."""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from serving.schemas import TokenizerSpec

TOKENIZER_FILE = "tokenizer.json"
INT8_FILE = "model.int8.onnx"
INPUTS = ("input_ids", "attention_mask")


def backend_tokenizer(tokenizer: Any, max_length: int) -> Tokenizer:
    """The `tokenizers` object behind a fast tokenizer, truncating to `max_length`, unpadded
    (each batch is padded to its own longest text). Training encodes with it too."""
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.enable_truncation(max_length=max_length)
    backend.no_padding()
    return backend


def pad_of(tokenizer: Any) -> tuple[int, bool]:
    """(pad id, pad on the left) as the tokenizer declares them."""
    return int(tokenizer.pad_token_id or 0), tokenizer.padding_side == "left"


def write_tokenizer(tokenizer: Any, out_dir: Path, max_length: int) -> TokenizerSpec:
    """`tokenizer.json` beside the graph and its spec for the model entry."""
    path = out_dir / TOKENIZER_FILE
    backend_tokenizer(tokenizer, max_length).save(str(path))
    pad_id, left = pad_of(tokenizer)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return TokenizerSpec(
        file=path.name, sha256=sha, max_length=max_length, pad_id=pad_id, pad_left=left
    )


def export_graph(module: torch.nn.Module, target: Path, output: str, opset: int) -> None:
    """Export `module(input_ids, attention_mask)` on the CPU, dynamic batch and sequence axes."""
    # Hundreds of lines nobody acts on: per unregistered torchvision op, per initializer.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    for name in ("onnx_ir", "onnxscript"):
        logging.getLogger(name).setLevel(logging.WARNING)
    example = torch.ones((2, 8), dtype=torch.long)  # batch 2: the exporter would fix a 1
    axes = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}
    with torch.no_grad(), warnings.catch_warnings():
        # Both inputs share the Dims on purpose, which the exporter notes once per axis.
        warnings.filterwarnings("ignore", message=r".*shares the same shape constraints.*")
        program = torch.onnx.export(  # the dynamo exporter, optimized: torch 2.13's defaults
            module.eval(),
            (example, example.clone()),
            input_names=list(INPUTS),
            output_names=[output],
            dynamic_shapes={name: axes for name in INPUTS},
            opset_version=opset,
            verbose=False,
        )
    assert program is not None
    program.save(str(target), external_data=False)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the MatMul weights (activations stay float at run time)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    # value_info keeps the traced example's shapes, which the quantizer's shape inference rejects.
    del model.graph.value_info[:]
    quantize_dynamic(model, target, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
