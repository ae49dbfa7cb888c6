"""Fine-tune a pretrained transformer on the processed splits: data module, module, fit, evaluate.

Every DDP rank runs `train_text_model` (Lightning re-launches `python -m pipeline.text_model` with
the same overrides for extra local ranks; torchrun and SLURM start them all). Only global rank 0
predicts, writes outputs and talks to MLflow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig

from pipeline.common.config import validate
from pipeline.common.dataset import Profile, load_profile
from pipeline.common.evaluation import SplitPredictions
from pipeline.common.tracking import Run, process_rank, start_run
from pipeline.text_model.config import TextModelConfig, TrainerConfig
from pipeline.text_model.data import SplitTexts, TextDataModule, encode, read_split
from pipeline.text_model.data import text_input_spec as build_spec
from pipeline.text_model.module import (
    TextClassifier,
    balanced_class_weights,
    predict_proba,
    weights_digest,
)
from pipeline.text_model.outputs import TextModelPaths, text_config, write_outputs, write_skipped
from pipeline.text_model.pretrained import load_pretrained
from pipeline.text_model.trainer import build_trainer, resume_checkpoint

log = logging.getLogger(__name__)


@dataclass
class TextModelResult:
    """What one rank did; `metrics` is filled on global rank 0 only."""

    rank: int
    world_size: int
    global_step: int
    samples_seen: int
    weights_sha256: str
    best_checkpoint: str | None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def train_text_model(
    config: TextModelConfig,
    trainer_config: TrainerConfig,
    profile: Profile,
    paths: TextModelPaths,
    seed: int,
    run: Run | None = None,
) -> TextModelResult:
    """Fine-tune, pick the best checkpoint on validation, and (rank 0) evaluate and save."""
    L.seed_everything(seed, workers=True, verbose=False)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    spec = build_spec(profile, config.text_fields)
    train = read_split(paths.processed_dir, "train", profile, spec, config.train_subsample, seed)
    val = read_split(paths.processed_dir, "val", profile, spec, config.val_subsample, seed)
    log.info("training on %d texts, validating on %d", len(train.texts), len(val.texts))
    tokenizer, model = load_pretrained(config, profile.n_classes, profile.labels, train.texts)
    weights = None
    if config.class_weights == "balanced":
        weights = balanced_class_weights(train.labels, profile.n_classes)
    module = TextClassifier(
        model, config.lr, config.weight_decay, config.warmup_ratio, weights, config.compile
    )
    data = TextDataModule(
        train,
        val,
        tokenizer,
        config.max_length,
        config.batch_size,
        config.eval_batch_size,
        config.num_workers,
        config.pin_memory,
        config.persistent_workers,
    )
    ckpt_path = resume_checkpoint(config, is_rank_zero=process_rank() == 0)
    trainer, checkpoint = build_trainer(config, trainer_config, run.run_id if run else None)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)

    result = TextModelResult(
        rank=trainer.global_rank,
        world_size=trainer.world_size,
        global_step=trainer.global_step,
        samples_seen=module.samples_seen,
        weights_sha256=weights_digest(model),
        best_checkpoint=checkpoint.best_model_path or None,
    )
    log.info(
        "rank %d/%d trained: %d optimizer steps, %d samples, weights sha256 %s",
        result.rank,
        result.world_size,
        result.global_step,
        result.samples_seen,
        result.weights_sha256[:16],
    )
    if not trainer.is_global_zero:
        return result
    if result.best_checkpoint:
        load_best(module, result.best_checkpoint)
    predictions = predict_splits(model, tokenizer, config, profile, paths, spec)
    payload = text_config(profile, spec, config.max_length, config.pretrained)
    result.metrics = write_outputs(
        paths,
        profile,
        model,
        tokenizer,
        payload,
        predictions,
        run,
        config.registered_model,
        train.texts[:2],
    )
    return result


def load_best(module: TextClassifier, checkpoint_path: str) -> None:
    """Load the weights of the best validation checkpoint (tensors only, no pickled objects)."""
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
    log.info("best checkpoint: %s", checkpoint_path)


def predict_splits(
    model: Any,
    tokenizer: Any,
    config: TextModelConfig,
    profile: Profile,
    paths: TextModelPaths,
    spec: dict[str, Any],
) -> dict[str, SplitPredictions]:
    """Class probabilities on the whole validation and test splits."""
    out = {}
    for split in ("val", "test"):
        data: SplitTexts = read_split(paths.processed_dir, split, profile, spec)
        ids = encode(tokenizer, data.texts, config.max_length)
        proba = predict_proba(model, ids, tokenizer.pad_token_id, config.eval_batch_size)
        out[split] = SplitPredictions(ids=data.ids, y_true=data.labels, proba=proba)
    return out


def run_text_model(cfg: DictConfig, paths: TextModelPaths | None = None) -> str:
    """Stage entry: validate config, skip without a text column, else train under MLflow."""
    paths = paths or TextModelPaths()
    config = validate(cfg.text_model, TextModelConfig, "text_model")
    trainer_config = validate(cfg.trainer, TrainerConfig, "trainer")
    profile = load_profile(paths.processed_dir)
    if profile.text is None:
        reason = "the data set has no text column (data config `text` is not set)"
        if process_rank() == 0:
            write_skipped(paths, reason)
        log.info("text model skipped: %s", reason)
        return f"skipped: {reason}"
    with start_run(cfg, "text_model", [paths.processed_dir]) as run:
        result = train_text_model(config, trainer_config, profile, paths, int(cfg.seed), run)
    if not result.metrics:
        return f"rank {result.rank}: trained {result.global_step} steps, outputs left to rank 0"
    test = result.metrics["test"]
    return (
        f"{result.global_step} steps on {result.world_size} device(s); test "
        f"accuracy={test['accuracy']:.3f} macro_f1={test['macro_f1']:.3f} "
        f"roc_auc={test['roc_auc']:.3f} → {paths.model_dir}"
    )
