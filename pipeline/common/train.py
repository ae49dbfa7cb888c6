"""The training runner every model stage shares (see `pipeline.common.model` for the steps)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipeline.common import decision, graph, metrics, parity, plots
from pipeline.common.config import validate
from pipeline.common.data import PROCESSED_DIR, Predictions, Split, Splits, load_profile
from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_dir, write_json, write_text
from pipeline.common.model import Model
from pipeline.common.paths import CARD_FILE
from pipeline.common.tracking import Run, start_run
from serving.schemas import Decision, ModelCard, ModelEntry, Profile, dump

log = logging.getLogger(__name__)
EVAL_SPLITS = ("val", "test")
Scores = dict[str, dict[str, float]]


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
class Finisher:
    """A fitted model's final predictions on a split, calibrated or in the target's units."""

    model: Model
    calibrator: decision.Calibrator
    decision: Decision | None
    profile: Profile

    def __call__(self, split: Split) -> Predictions:
        raw = self.model.predict(split)
        if self.profile.is_classification:
            assert self.decision is not None
            proba = self.calibrator.apply(raw)
            labels = decision.labels(proba, self.decision, self.profile)
            gain = self.calibrator.gain(raw)
            return Predictions(split, split.y, proba=proba, labels=labels, gain=gain)
        values = np.asarray(raw, dtype=np.float64).reshape(len(split))
        band = self.model.predict_interval(split)
        interval = None if band is None else np.sort(np.asarray(band, np.float64), axis=1)
        y = split.y
        if self.profile.target_transform == "log1p":
            with np.errstate(over="ignore"):  # extreme inputs may give inf, as in the graph
                values, y = np.expm1(values), np.expm1(y)
                interval = None if interval is None else np.expm1(interval)
        return Predictions(split, y, values=values, interval=interval)


@contextmanager
def timed(step: str, seconds: dict[str, float]) -> Iterator[None]:
    started = time.perf_counter()
    yield
    seconds[step] = time.perf_counter() - started
    log.info("%s took %.1fs", step, seconds[step])


def train_model(
    model_cls: type[Model], cfg: DictConfig, name: str, paths: ModelPaths, seed: int
) -> Scores:
    """Run every step of a model stage; returns the metrics written to `metrics/<name>.json`."""
    profile = load_profile(paths.processed_dir)
    config: object = validate(model_cls.config_node(cfg, name), model_cls.config_class, name)
    rules = decision.settings(cfg.get("decision"), profile)
    model = model_cls(name, config, profile, seed)
    reason = model.skip_reason()
    if reason is not None:
        write_skipped(name, profile, paths, reason)
        return {}
    model.check()
    data = Splits.load(paths.processed_dir)
    seconds: dict[str, float] = {}
    with start_run(cfg, name, [paths.processed_dir]) as run:
        with timed("fit", seconds):
            model.fit(data, run)
        with timed("predict", seconds):
            raw_val = model.predict(data.val)
            calibrator = decision.fit_calibrator(raw_val, data.val.y, profile, rules)
            chosen = decision.tune(calibrator.apply(raw_val), data.val.y, profile, rules)
            finish = Finisher(model, calibrator, chosen, profile)
            predictions = {s: finish(data[s]) for s in EVAL_SPLITS}
        scores = {s: metrics.evaluate(p, profile) for s, p in predictions.items()}
        with atomic_dir(paths.model_dir) as out, atomic_dir(paths.plots_dir) as plot_dir:
            with timed("export", seconds):
                built = model.to_onnx(out)
                outputs = graph.finish(out / built.file, built.outputs, profile, calibrator)
                entry = ModelEntry(
                    **{**vars(built), "outputs": outputs},
                    name=name,
                    kind=model_cls.kind,
                    sha256=graph.sha256(out / built.file),
                    decision=chosen,
                    calibration=calibrator.spec if profile.is_classification else None,
                    metrics=scores,
                )
            with timed("parity", seconds):
                edges = {k: finish(split) for k, split in model.edge_splits(data).items()}
                wanted = {"test": predictions["test"], **edges}
                report = parity.check_model(out, entry, wanted, profile, model.tolerance)
            if not report.passed:
                raise PipelineError(
                    parity.summary_line(report),
                    where=f"{paths.model_dir}/{built.file}",
                    fix="the converter and the native model disagree; see the graph's steps",
                )
            model.save(out)
            for split, pred in predictions.items():
                pred.frame(profile).to_parquet(out / f"predictions_{split}.parquet", index=False)
            importance = model.importance()
            plots.write_plots(
                f"{name} (test)", predictions["test"], profile, plot_dir, importance, chosen
            )
            if run is not None:
                entry = log_run(run, model, out, plot_dir, entry, scores, seconds)
            card = ModelCard(
                name=name,
                task=profile.task,
                labels=profile.labels,
                entry=entry,
                parity=report,
                importance=importance,
                params=model.params(),
            )
            write_text(out / CARD_FILE, dump(card))
            if run is not None:
                run.log_text(dump(card), CARD_FILE)
        write_json(paths.metrics_file, scores)
    return scores


def log_run(
    run: Run,
    model: Model,
    out: Path,
    plot_dir: Path,
    entry: ModelEntry,
    scores: Scores,
    seconds: dict[str, float],
) -> ModelEntry:
    """Metrics, timings, facts, plots, the native model and the registered graph to MLflow."""
    run.log_metrics(scores)
    run.log_metrics({"duration": {f"{k}_s": v for k, v in seconds.items()}})
    if model.params():
        run.log_params({f"learned.{k}": v for k, v in model.params().items()})
    run.log_artifacts(plot_dir, "plots")
    if entry.tokenizer is not None:  # beside the card: export re-scores the incumbent
        run.log_artifacts(out / entry.tokenizer.file)
    model.log_model(run, out)
    return run.log_onnx(out / entry.file, entry)


def write_skipped(name: str, profile: Profile, paths: ModelPaths, reason: str) -> None:
    """A stage that trains nothing on this data still leaves its outputs: the card says why."""
    log.info("%s skipped: %s", name, reason)
    card = ModelCard(name=name, task=profile.task, labels=profile.labels, skipped=reason)
    with atomic_dir(paths.model_dir) as out, atomic_dir(paths.plots_dir):
        write_text(out / CARD_FILE, dump(card))
    write_json(paths.metrics_file, {})


def train_entry(model_cls: type[Model], name: str) -> Callable[[DictConfig], str]:
    """The stage entry for `run_stage`: train `model_cls` as stage `name`, summarise in a line."""

    def main(cfg: DictConfig) -> str:
        scores = train_model(model_cls, cfg, name, ModelPaths.for_model(name), int(cfg.seed))
        if not scores:
            return "skipped (see the log line above)"
        shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted(scores["test"].items())[:5])
        return f"test {shown} → models/trained/{name}"

    return main
