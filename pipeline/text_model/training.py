"""Fine-tuning with Lightning: batches, the head's warm start, the LightningModule, the Trainer.
Every DDP rank runs this (Lightning re-launches the command for extra local ranks)."""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from pipeline.common.errors import PipelineError
from pipeline.common.logs import progress_enabled
from pipeline.common.tracking import process_rank
from pipeline.text_model.config import TextModelConfig
from pipeline.text_model.encoder import TextNet
from serving.runtime import pad

log = logging.getLogger(__name__)
MONITOR = "val_loss"
Batch = dict[str, torch.Tensor]
Candidate = tuple[float, dict[str, torch.Tensor]]  # validation loss, state dict


@dataclass
class Batches:
    """Token ids and targets; `collate` pads each batch to its own longest text, as serving does."""

    ids: list[list[int]]
    y: np.ndarray
    pad_id: int
    pad_left: bool

    def __len__(self) -> int:
        return len(self.ids)

    def collate(self, rows: Sequence[int]) -> Batch:
        input_ids, mask = pad([self.ids[r] for r in rows], self.pad_id, self.pad_left)
        return {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(mask),
            "y": torch.from_numpy(self.y[np.asarray(rows)]),
        }

    def loader(self, batch_size: int, shuffle: bool) -> DataLoader[Any]:
        rows = cast(Any, range(len(self)))
        return DataLoader(rows, batch_size=batch_size, shuffle=shuffle, collate_fn=self.collate)


@torch.no_grad()
def run_batches(module: Callable[..., torch.Tensor], data: Batches, batch_size: int) -> np.ndarray:
    """`module(input_ids, attention_mask)` on all rows (float64, input order), batched by length."""
    order = np.argsort([len(i) for i in data.ids], kind="stable").tolist()
    batches = (data.collate(order[k : k + batch_size]) for k in range(0, len(order), batch_size))
    out = np.concatenate([module(b["input_ids"], b["attention_mask"]).numpy() for b in batches])
    return out[np.argsort(order)].astype(np.float64)


def warm_start(module: FineTune, train: Batches, val: Batches, batch_size: int) -> Candidate:
    """Fit the head on frozen-encoder features, so that a random head's gradients do not reach the
    pretrained encoder; (val loss, weights), a candidate like every checkpoint."""
    from sklearn.linear_model import LogisticRegression, Ridge

    net = module.net.eval()
    features = run_batches(net.pool, train, batch_size)
    if module.regression:
        fitted = Ridge(alpha=1.0).fit(features, train.y)
        weight, bias = fitted.coef_.reshape(1, -1), np.atleast_1d(fitted.intercept_)
    else:
        clf = LogisticRegression(C=1.0, max_iter=2000).fit(features, train.y)
        weight, bias = clf.coef_, clf.intercept_
        if len(clf.classes_) == 2:  # one logit w·x + b → two logits ∓(w·x + b)/2, same softmax
            weight, bias = np.vstack([-weight / 2, weight / 2]), np.array([-bias[0], bias[0]]) / 2
    with torch.no_grad():
        if len(weight) == net.head.out_features:
            net.head.weight.copy_(torch.from_numpy(weight))
            net.head.bias.copy_(torch.from_numpy(bias))
        else:
            log.info("warm start skipped: the training rows miss a class")
        total = sum(float(module.loss(b)) * len(b["y"]) for b in val.loader(batch_size, False))
    net.train()
    loss = total / max(len(val), 1)  # as `validation_step` averages it
    log.info("warm start: val_loss=%.4f (head fitted on frozen-encoder features)", loss)
    return loss, {k: v.clone() for k, v in net.state_dict().items()}


def param_groups(net: TextNet, config: TextModelConfig) -> list[dict[str, Any]]:
    """AdamW groups: the head at `head_lr`; encoder layer k from the top at lr * layer_decay**k,
    embeddings below the lowest layer; no weight decay on biases and norms."""
    n_layers = int(net.encoder.config.num_hidden_layers)
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, param in net.named_parameters():
        if not param.requires_grad:
            continue
        found = re.search(r"\.layers?\.(\d+)\.", name)
        depth = n_layers - 1 - int(found[1]) if found else n_layers if "embed" in name else 0
        lr = config.head_lr if name.startswith("head.") else config.lr * config.layer_decay**depth
        decay = 0.0 if param.ndim == 1 else config.weight_decay
        groups.setdefault((lr, decay), []).append(param)
    return [{"params": p, "lr": lr, "weight_decay": wd} for (lr, wd), p in groups.items()]


class FineTune(L.LightningModule):
    """Cross-entropy (classification) or MSE / Huber on the standardised target (regression)."""

    def __init__(self, net: TextNet, regression: bool, config: TextModelConfig) -> None:
        super().__init__()
        self.net, self.regression, self.config = net, regression, config
        # A third of MiniLM's weights, which small data cannot move far: no gradient, no update.
        net.encoder.get_input_embeddings().weight.requires_grad_(config.train_embeddings)
        self.samples_seen = 0  # per rank; the DDP test checks that every rank trained

    def configure_model(self) -> None:
        if self.config.compile:
            # In place: state_dict keys stay the plain model's. Batches vary in length.
            self.net.encoder.compile(dynamic=True)

    def loss(self, batch: Batch) -> torch.Tensor:
        out = self.net(batch["input_ids"], batch["attention_mask"]).float()
        if not self.regression:
            return nn.functional.cross_entropy(out, batch["y"])
        loss = nn.functional.huber_loss if self.config.loss == "huber" else nn.functional.mse_loss
        return loss(out[:, 0], batch["y"])

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.samples_seen += len(batch["y"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["y"]))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self.log(
            MONITOR, self.loss(batch), prog_bar=True, sync_dist=True, batch_size=len(batch["y"])
        )

    def configure_optimizers(self) -> Any:
        from transformers import get_linear_schedule_with_warmup

        optimizer = torch.optim.AdamW(param_groups(self.net, self.config))
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = int(self.config.warmup_ratio * total)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
        return [optimizer], [{"scheduler": scheduler, "interval": "step"}]


class Curves(Callback):
    """Rank 0: `fit/train_loss` (every 10 steps) and `fit/val_loss` to MLflow; a log line each."""

    def __init__(self, run_id: str | None) -> None:
        self.run_id, self.started = run_id, time.perf_counter()

    def _log(self, trainer: L.Trainer, name: str) -> float:
        value = float(trainer.callback_metrics.get(name, float("nan")))
        if self.run_id is not None and trainer.is_global_zero and name in trainer.callback_metrics:
            import mlflow

            mlflow.log_metric(f"fit/{name}", value, step=trainer.global_step, run_id=self.run_id)
        return value

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step % 10 == 0:
            self._log(trainer, "train_loss")

    def on_validation_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.is_global_zero:
            log.info(
                "step %d/%d: train_loss=%.4f val_loss=%.4f, %.0fs",
                *(trainer.global_step, trainer.estimated_stepping_batches),
                float(trainer.callback_metrics.get("train_loss", float("nan"))),
                self._log(trainer, MONITOR),
                time.perf_counter() - self.started,
            )


def build_trainer(
    config: TextModelConfig, run_id: str | None
) -> tuple[L.Trainer, ModelCheckpoint, str | None]:
    """A Trainer with early stopping and best/last checkpoints on the validation loss, and the
    checkpoint to resume from; a fresh run clears stale checkpoints (rank 0 only)."""
    resume = config.resume_from
    if resume == "last":
        resume = str(Path(config.checkpoint_dir, "last.ckpt"))
    if resume is None and process_rank() == 0:
        shutil.rmtree(config.checkpoint_dir, ignore_errors=True)
    elif resume is not None and not Path(resume).is_file():
        raise PipelineError(
            "checkpoint to resume from not found",
            where=resume,
            fix="train once without text_model.resume_from, or give an existing .ckpt path",
        )
    hardware = asdict(config.trainer)  # lightning.Trainer arguments
    precision = hardware.pop("precision")
    gpu = hardware["accelerator"] in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    if precision.startswith("bf16") and gpu and not torch.cuda.is_bf16_supported():
        log.warning("this GPU has no bf16 support: using 16-mixed instead of %s", precision)
        precision = "16-mixed"
    checkpoint = ModelCheckpoint(
        dirpath=config.checkpoint_dir, filename="best-{step}", monitor=MONITOR, save_top_k=1
    )
    # last.ckpt, what `resume_from: last` continues from, at every validation. Not `save_last`
    # above: Lightning writes it only with a new best, so resuming would repeat steps.
    last = ModelCheckpoint(
        dirpath=config.checkpoint_dir, filename="last", enable_version_counter=False
    )
    stop = EarlyStopping(monitor=MONITOR, patience=config.early_stopping_patience)
    try:
        trainer = L.Trainer(
            **hardware,
            precision=cast(Any, precision),
            max_epochs=config.max_epochs,
            max_steps=config.max_steps,
            accumulate_grad_batches=config.accumulate_grad_batches,
            gradient_clip_val=config.gradient_clip_val,
            val_check_interval=config.val_check_interval,
            check_val_every_n_epoch=None,  # validate every val_check_interval batches
            callbacks=[checkpoint, last, stop, Curves(run_id)],
            # "warn": a CUDA kernel without a deterministic version warns instead of failing.
            deterministic="warn" if config.deterministic else False,
            logger=False,  # MLflow through pipeline.common.tracking, rank 0 only
            default_root_dir=config.checkpoint_dir,
            enable_progress_bar=progress_enabled(),
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
    except (ValueError, RuntimeError) as exc:  # Lightning's MisconfigurationException included
        raise PipelineError(
            f"cannot build the trainer: {str(exc).splitlines()[0]}",
            where="configs/trainer",
            fix="trainer=cpu on a machine without GPUs; see docs/text_model.md for gpu and ddp",
        ) from None
    return trainer, checkpoint, resume
