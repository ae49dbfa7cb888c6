"""What the text model stage leaves behind: the model directory, metrics, plots, MLflow entries."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.common.dataset import PROCESSED_DIR, Profile
from pipeline.common.evaluation import SplitPredictions, evaluate_model
from pipeline.common.io import atomic_dir, write_json
from pipeline.common.tracking import Run
from pipeline.text_model.pretrained import quiet_transformers

log = logging.getLogger(__name__)

NAME = "text_model"
HF_DIR = "hf"
TEXT_CONFIG = "text_config.json"


@dataclass(frozen=True)
class TextModelPaths:
    """Where the stage reads and writes (docs/architecture.md); tests point them at tmp_path."""

    processed_dir: Path = PROCESSED_DIR
    model_dir: Path = Path("models/text_model")
    metrics_path: Path = Path("metrics/text_model.json")
    plots_dir: Path = Path("plots/text_model")


def write_skipped(paths: TextModelPaths, reason: str) -> None:
    """The outputs of a skipped stage: a marker, `{"skipped": true}` metrics, no plots."""
    with atomic_dir(paths.model_dir) as tmp:
        write_json(tmp / "skipped.json", {"skipped": True, "reason": reason})
    write_json(paths.metrics_path, {"skipped": True})
    with atomic_dir(paths.plots_dir):
        pass


def text_config(
    profile: Profile, spec: Mapping[str, Any], max_length: int, pretrained: str
) -> dict[str, Any]:
    """`text_config.json`: everything serving needs besides the weights and the tokenizer."""
    return {
        "max_length": max_length,
        "text_input": dict(spec),  # the spec serving.text_input.build_text takes
        "labels": profile.labels,
        "task": profile.task,
        "pretrained": pretrained,
        "hf_dir": HF_DIR,
    }


def write_outputs(
    paths: TextModelPaths,
    profile: Profile,
    model: Any,
    tokenizer: Any,
    config_payload: Mapping[str, Any],
    predictions: Mapping[str, SplitPredictions],
    run: Run | None,
    registered_model: str,
    example_texts: list[str],
) -> dict[str, dict[str, float]]:
    """Save model + tokenizer, evaluate, track; the model directory appears whole or not at all."""
    with atomic_dir(paths.model_dir) as tmp, quiet_transformers():
        model.save_pretrained(tmp / HF_DIR)  # safetensors
        tokenizer.save_pretrained(tmp / HF_DIR)
        write_json(tmp / TEXT_CONFIG, dict(config_payload))
        metrics = evaluate_model(
            NAME, profile, predictions, tmp, paths.metrics_path, paths.plots_dir
        )
        if run is not None:
            log_to_mlflow(
                run,
                tmp,
                paths.plots_dir,
                metrics,
                model,
                tokenizer,
                example_texts,
                registered_model,
            )
        summary = run.summary() if run is not None else _untracked_summary()
        write_json(tmp / "run.json", summary)
    return metrics


def log_to_mlflow(
    run: Run,
    model_dir: Path,
    plots_dir: Path,
    metrics: Mapping[str, Mapping[str, float]],
    model: Any,
    tokenizer: Any,
    example_texts: list[str],
    registered_model: str,
) -> None:
    """Metrics, plots, evaluation and the model (MLflow's transformers flavor, safetensors)."""
    run.log_metrics(metrics)
    run.log_artifacts(plots_dir, "plots")
    run.log_artifacts(model_dir / "evaluation.json")
    run.log_artifacts(model_dir / TEXT_CONFIG)
    info = _log_transformers_model(model, tokenizer, example_texts)
    if run.register_models:
        version = run.register(info, registered_model)
        log.info("registered MLflow model %s version %s", registered_model, version)


def _log_transformers_model(model: Any, tokenizer: Any, example_texts: list[str]) -> Any:
    """Log model + tokenizer with the transformers flavor: safetensors files, no pickle."""
    import mlflow
    import tokenizers
    import torch
    import transformers
    from huggingface_hub import ModelCard

    # Explicit requirements: the flavor's inferred defaults add torchvision, which we don't use.
    requirements = [
        f"transformers=={transformers.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"tokenizers=={tokenizers.__version__}",
    ]
    # A card of our own keeps the flavor from asking the hub for one.
    base = model.config.name_or_path or "tiny-random"
    card = ModelCard(f"---\nlibrary_name: transformers\n---\n# {NAME}\n\nFine-tuned from {base}.\n")
    return mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": tokenizer},
        task="text-classification",
        name="model",
        input_example=example_texts[:2],
        pip_requirements=requirements,
        model_card=card,
    )


def _untracked_summary() -> dict[str, Any]:
    keys = ("run_id", "experiment_id", "tracking_uri", "registered_model", "version")
    return dict.fromkeys(keys)
