"""The Lightning Trainer from the `trainer` config group: devices, DDP, precision, callbacks."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, cast

import lightning as L
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from pipeline.common.errors import PipelineError
from pipeline.common.logs import progress_enabled
from pipeline.text_model.config import TextModelConfig, TrainerConfig

log = logging.getLogger(__name__)

MONITOR = "val_loss"
LAST_CHECKPOINT = "last.ckpt"


class MlflowCurves(Callback):
    """Training curves (loss per logged step, validation metrics per check) on global rank 0.

    Logged as `fit/<name>` so they never shadow the final `val_*` / `test_*` metrics, which are
    computed on whole splits (validation during fit uses `val_subsample`).
    """

    def __init__(self, run_id: str | None, every_n_steps: int = 10) -> None:
        self.run_id = run_id
        self.every_n_steps = every_n_steps

    def _log(self, trainer: L.Trainer, names: tuple[str, ...]) -> None:
        if self.run_id is None or not trainer.is_global_zero:
            return
        import mlflow

        metrics = trainer.callback_metrics
        values = {f"fit/{n}": float(metrics[n]) for n in names if n in metrics}
        if values:
            mlflow.log_metrics(values, step=trainer.global_step, run_id=self.run_id)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._log(trainer, ("train_loss",))

    def on_validation_end(self, trainer: L.Trainer, *args: Any) -> None:
        if not trainer.sanity_checking:
            self._log(trainer, ("val_loss", "val_accuracy"))


class ValidationLog(Callback):
    """One log line per validation (step, losses, time): progress in non-interactive logs."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, *args: Any) -> None:
        self.started = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        elapsed = time.perf_counter() - self.started
        log.info(
            "step %d/%d (epoch %d): train_loss=%.4f val_loss=%.4f val_accuracy=%.3f, %.0fs",
            trainer.global_step,
            trainer.estimated_stepping_batches,
            trainer.current_epoch,
            float(metrics.get("train_loss", float("nan"))),
            float(metrics.get("val_loss", float("nan"))),
            float(metrics.get("val_accuracy", float("nan"))),
            elapsed,
        )


def resolve_precision(precision: str, accelerator: str) -> str:
    """bf16 where the GPU supports it; otherwise fp16 mixed precision, with a log line."""
    import torch

    wants_gpu = accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    if precision.startswith("bf16") and wants_gpu and not torch.cuda.is_bf16_supported():
        log.warning("this GPU has no bf16 support: using 16-mixed instead of %s", precision)
        return "16-mixed"
    return precision


def build_trainer(
    config: TextModelConfig, trainer_config: TrainerConfig, run_id: str | None
) -> tuple[L.Trainer, ModelCheckpoint]:
    """A Trainer with early stopping and best/last checkpoints on `val_loss`."""
    checkpoint = ModelCheckpoint(
        dirpath=config.checkpoint_dir,
        filename="best-{step}",
        monitor=MONITOR,
        mode="min",
        save_top_k=1,
        save_last=True,  # last.ckpt: what `resume_from: last` continues from
    )
    stopping = EarlyStopping(monitor=MONITOR, mode="min", patience=config.early_stopping_patience)
    try:
        trainer = L.Trainer(
            accelerator=trainer_config.accelerator,
            devices=trainer_config.devices,
            strategy=trainer_config.strategy,
            num_nodes=trainer_config.num_nodes,
            precision=cast(
                Any, resolve_precision(trainer_config.precision, trainer_config.accelerator)
            ),
            max_epochs=config.max_epochs,
            max_steps=config.max_steps,
            accumulate_grad_batches=config.accumulate_grad_batches,
            gradient_clip_val=config.gradient_clip_val,
            val_check_interval=config.val_check_interval,
            callbacks=[checkpoint, stopping, MlflowCurves(run_id), ValidationLog()],
            logger=False,  # MLflow logging goes through pipeline.common.tracking on rank 0
            default_root_dir=config.checkpoint_dir,
            enable_progress_bar=progress_enabled(),
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
    except (MisconfigurationException, ValueError, RuntimeError) as exc:
        raise PipelineError(
            f"cannot build the trainer: {str(exc).splitlines()[0]}",
            where="configs/trainer",
            fix="trainer=cpu on a machine without GPUs; see docs/text_model.md for gpu and ddp",
        ) from None
    return trainer, checkpoint


def resume_checkpoint(config: TextModelConfig, is_rank_zero: bool) -> str | None:
    """The checkpoint to resume from; a fresh run clears stale checkpoints (rank 0 only)."""
    directory = Path(config.checkpoint_dir)
    if config.resume_from is None:
        if is_rank_zero and directory.exists():
            shutil.rmtree(directory)
        return None
    path = directory / LAST_CHECKPOINT if config.resume_from == "last" else Path(config.resume_from)
    if not path.is_file():
        raise PipelineError(
            "checkpoint to resume from not found",
            where=str(path),
            fix="train once without text_model.resume_from, or give an existing .ckpt path",
        )
    return str(path)
