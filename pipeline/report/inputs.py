"""What the report reads: each input, or None (said on the page) where it does not exist yet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from pipeline.common.data import PROCESSED_DIR, PROFILE_FILE, Predictions, read_stage_file
from pipeline.common.errors import PipelineError
from pipeline.common.metrics import evaluate
from pipeline.common.paths import CARD_FILE
from pipeline.report import truth
from serving.schemas import CONTRACT_FILE, Contract, ModelCard, ParityReport, Profile, Typed

BASE = "base rate"
# Plots shown first, in this order, when a model stage wrote them; any other PNG follows by name.
PLOT_ORDER = ("reliability", "threshold", "predicted_vs_actual", "residuals", "residual_histogram")
T = TypeVar("T", bound=Typed)


@dataclass(frozen=True)
class ModelResult:
    """One model stage's card (None: the stage has not run), test predictions and plots."""

    name: str
    card: ModelCard | None
    test: Predictions | None
    plots: list[tuple[str, bytes]]

    @property
    def status(self) -> str:
        return "not run" if self.card is None else "trained" if self.card.entry else "skipped"


@dataclass(frozen=True)
class Assessment:
    """The headline test metric's intervals, standings and the base rate."""

    metric: str
    base: dict[str, float]  # the base rate's test metrics
    base_what: str  # what the base rate predicts, in words
    intervals: dict[str, truth.Interval | None]
    standing: dict[str, str]


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows; None where an input does not exist yet."""

    profile: Profile | None
    models: list[ModelResult]
    contract: Contract | None
    parity: ParityReport | None
    assessment: Assessment | None = None

    @property
    def trained(self) -> list[ModelResult]:
        return [m for m in self.models if m.status == "trained"]


def _read(path: Path, kind: type[T]) -> T | None:
    """A typed file, None when absent; a one-line error when it does not match its definition."""
    return read_stage_file(path, kind) if path.is_file() else None


def _plots(folder: Path) -> list[tuple[str, bytes]]:
    files = {p.stem: p for p in folder.glob("*.png")} if folder.is_dir() else {}
    order = [k for k in PLOT_ORDER if k in files] + sorted(k for k in files if k not in PLOT_ORDER)
    return [(k, files[k].read_bytes()) for k in order]


def load(root: Path, names: list[str]) -> ReportData:
    """Read every input below the project root `root`."""
    profile = _read(root / PROCESSED_DIR / PROFILE_FILE, Profile)
    models = []
    for name in names:
        folder = root / "models" / "trained" / name
        card = _read(folder / CARD_FILE, ModelCard)
        test = None
        if card is not None and profile is not None and card.task != profile.task:
            raise PipelineError(
                f"the card is for a {card.task} task, the data is {profile.task}",
                where=str(folder / CARD_FILE),
                fix=f"re-run the model stage: dvc repro {name}",
            )
        if card is not None and card.entry is not None and profile is not None:
            test = Predictions.read(folder / "predictions_test.parquet", profile, name)
        models.append(ModelResult(name, card, test, _plots(root / "plots" / name)))
    export = root / "models" / "export"
    return ReportData(
        profile,
        models,
        _read(export / CONTRACT_FILE, Contract),
        _read(export / "parity.json", ParityReport),
    )


def assess(data: ReportData, resamples: int, seed: int) -> Assessment | None:
    """Base rate, headline intervals and standings on the test split (None: nothing trained)."""
    profile = data.profile
    tested = {m.name: m.test for m in data.trained if m.test is not None}
    if profile is None or not tested:
        return None
    default = "roc_auc" if profile.is_classification else "rmse"
    metric = data.contract.champion_metric.split(".", 1)[1] if data.contract else default
    first = next(iter(tested.values()))
    base, what = truth.base_rate(first, profile)
    stats = {name: truth.statistic(metric, out, profile) for name, out in tested.items()}
    stats[BASE] = truth.statistic(metric, base, profile)
    intervals = truth.bootstrap(stats, len(first.y_true), resamples, seed)
    everything = np.arange(len(first.y_true))
    points = {name: stat(everything) for name, stat in stats.items() if name != BASE}
    return Assessment(
        metric, evaluate(base, profile), what, intervals, truth.standings(points, intervals, metric)
    )
