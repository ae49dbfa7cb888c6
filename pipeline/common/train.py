"""The training runner every model stage shares (see `pipeline.common.model` for the steps)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from pipeline.common import decision, graph, metrics, parity, plots
from pipeline.common.config import validate
from pipeline.common.data import PROCESSED_DIR, Split, Splits, load_profile
from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_dir, write_json, write_text
from pipeline.common.model import MODEL_FILE, Model
from pipeline.common.tracking import Run, start_run
from serving.schemas import ModelCard, ModelEntry, Profile, dump

log = logging.getLogger(__name__)
CARD_FILE = "card.json"
EVAL_SPLITS = ("val", "test")


@dataclass(frozen=True)
class ModelPaths:
    """Where a model stage reads and writes (fixed paths DVC tracks)."""

    processed_dir: Path
    model_dir: Path  # models/trained/<name>/
    metrics_file: Path  # metrics/<name>.json
    plots_dir: Path  # plots/<name>/

    @classmethod
    def for_model(cls, name: str, root: Path = Path(".")) -> ModelPaths:
        return cls(
            root / PROCESSED_DIR,
            root / "models" / "trained" / name,
            root / "metrics" / f"{name}.json",
            root / "plots" / name,
        )


@dataclass(frozen=True)
class Predictions:
    """A model's final predictions on one split: calibrated probabilities (or values in the
    target's own units) and the labels the decision gives."""

    split: Split
    y_true: np.ndarray  # class index, or target value in its own units
    proba: np.ndarray | None  # [N, C] classification
    values: np.ndarray | None  # [N] regression
    labels: np.ndarray | None  # class index per row (classification)

    def frame(self, profile: Profile) -> pd.DataFrame:
        """`predictions_<split>.parquet`: id, y_true, then label + proba_<i> or value."""
        out: dict[str, object] = {profile.id: self.split.ids, "y_true": self.y_true}
        if self.proba is not None and self.labels is not None:
            out["label"] = np.asarray(profile.labels, dtype=object)[self.labels]
            for k in range(self.proba.shape[1]):
                out[f"proba_{k}"] = self.proba[:, k].astype(np.float64)
        else:
            assert self.values is not None
            out["value"] = self.values.astype(np.float64)
        return pd.DataFrame(out)


def train_model(
    model_cls: type[Model], cfg: DictConfig, name: str, paths: ModelPaths, seed: int
) -> dict[str, dict[str, float]]:
    """Run every step of a model stage (module docstring of `pipeline.common.model`)."""
    profile = load_profile(paths.processed_dir)
    config = validate(cfg[name], model_cls.config_class, name)
    settings = decision.settings(cfg, profile)  # calibration and decision, checked for the task
    model = model_cls(name, config, profile, seed)
    reason = model.skip_reason()
    if reason is not None:
        write_skipped(name, profile, paths, reason)
        return {}
    model.check()
    data = Splits.load(paths.processed_dir)
    with start_run(cfg, name, [paths.processed_dir]) as run:
        model.fit(data, run)
        calibrator = decision.fit_calibrator(model.predict(data.val), data.val.y, settings)
        raw = {s: model.predict(data[s]) for s in EVAL_SPLITS}
        chosen = decision.tune(calibrator.apply(raw["val"]), data.val.y, profile, settings)
        predictions = {
            s: finish(data[s], raw[s], calibrator, chosen, profile) for s in EVAL_SPLITS
        }
        scores = {s: metrics.evaluate(p, profile) for s, p in predictions.items()}
        with atomic_dir(paths.model_dir) as out:
            built = model.to_onnx(out)
            graph.finish(out / built.file, profile, calibrator)
            entry = ModelEntry(
                name=name,
                kind=model_cls.kind,
                file=built.file,
                sha256=graph.sha256(out / built.file),
                inputs=built.inputs,
                text_input=built.text_input,
                tokenizer=built.tokenizer,
                outputs=built.outputs,
                decision=chosen,
                calibration=calibrator.spec if profile.is_classification else None,
                metrics=scores,
            )
            native = {s: predictions[s] for s in EVAL_SPLITS}
            report = parity.check_model(out, entry, profile, native, model.edge_splits(data),
                                        model, calibrator, model.tolerance)
            if not report.passed:
                raise PipelineError(parity.summary_line(report), where=str(paths.model_dir),
                                    fix="see the parity checks logged above; the converter "
                                    "and the native model disagree")
            model.save(out)
            for split, pred in predictions.items():
                pred.frame(profile).to_parquet(out / f"predictions_{split}.parquet", index=False)
            importance = model.importance()
            with atomic_dir(paths.plots_dir) as plot_dir:
                plots.write_plots(name, predictions["test"], profile, plot_dir, importance)
            if run is not None:
                run.log_metrics(scores)
                run.log_artifacts(paths.plots_dir, "plots")
                model.log_model(run, out)
                entry = run.log_onnx(out, entry)
            card = ModelCard(
                name=name,
                task=profile.task,
                entry=entry,
                parity=report,
                importance=importance,
                params=model.params(),
            )
            write_text(out / CARD_FILE, dump(card))
        write_json(paths.metrics_file, scores)
    return scores


def finish(
    split: Split,
    raw: np.ndarray,
    calibrator: decision.Calibrator,
    chosen: object,
    profile: Profile,
) -> Predictions:
    """Calibrated probabilities and decided labels, or values back in the target's units."""
    if profile.is_classification:
        proba = calibrator.apply(raw)
        return Predictions(split, split.y, proba, None, decision.labels(proba, chosen))
    values = np.asarray(raw, dtype=np.float64).reshape(len(split))
    y = split.y
    if profile.target_transform == "log1p":
        values, y = np.expm1(values), np.expm1(y)
    return Predictions(split, y, None, values, None)


def write_skipped(name: str, profile: Profile, paths: ModelPaths, reason: str) -> None:
    """A stage that trains nothing on this data still leaves its outputs: the card says why."""
    log.info("%s skipped: %s", name, reason)
    with atomic_dir(paths.model_dir) as out:
        write_text(out / CARD_FILE, dump(ModelCard(name=name, task=profile.task, skipped=reason)))
    write_json(paths.metrics_file, {})
    with atomic_dir(paths.plots_dir):
        pass


def train_entry(model_cls: type[Model], name: str) -> Callable[[DictConfig], str]:
    """The stage entry for `run_stage`: train `model_cls` as stage `name`, summarise in a line."""

    def main(cfg: DictConfig) -> str:
        scores = train_model(model_cls, cfg, name, ModelPaths.for_model(name), int(cfg.seed))
        if not scores:
            return "skipped (see the log line above)"
        test = scores["test"]
        shown = ", ".join(f"{k}={v:.4f}" for k, v in list(test.items())[:4])
        return f"test {shown} → models/trained/{name}"

    return main
