"""The champion gate: this run's best model against the MLflow version holding `champion`,
both re-scored on the current validation split through `serving.runtime`."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from pipeline.common import decision, metrics
from pipeline.common.data import SplitRows
from pipeline.common.errors import PipelineError
from pipeline.common.metrics import improvement
from pipeline.common.paths import CARD_FILE
from pipeline.common.tracking import mlflow_errors
from pipeline.export.registry import Registry
from serving.features import prepare_columns
from serving.runtime import LoadedModel, load_model
from serving.schemas import Incumbent, ModelCard, ModelEntry, Profile, Promotion, read_file

log = logging.getLogger(__name__)
Policy = Literal["always", "if_better", "never"]
POLICIES = get_args(Policy)


def pick_candidate(entries: dict[str, ModelEntry], metric: str) -> str:
    """The exported model with the best validation `metric` (first listed among equals)."""
    val = {n: e.metrics.get("val", {}) for n, e in entries.items()}
    found = {n: scores[metric] for n, scores in val.items() if metric in scores}
    if not found:
        raise PipelineError(
            f"no exported model has a validation '{metric}'",
            where="models/trained/<model>/card.json",
            fix="set export.champion_metric to a metric the model stages write under 'val'",
        )
    return max(found, key=lambda n: improvement(metric, found[n], 0.0))


def incompatibility(card: ModelCard, profile: Profile) -> str | None:
    """Why a registered model cannot be scored on the current data; None when it can."""
    entry = card.entry
    if entry is None:
        return "its card says it was skipped"
    if card.task != profile.task:
        return f"it was trained for {card.task}, the data is {profile.task}"
    if card.labels != profile.labels:
        return f"its labels {card.labels} differ from the data's {profile.labels}"
    spec = profile.features
    strings = {*spec.categorical, *spec.text_column, spec.folded_text}
    numbers = set(spec.model_numeric)
    if entry.kind == "text":
        assert entry.text_input is not None
        if entry.text_input.text != spec.text:
            return f"it reads text field {entry.text_input.text!r}, the data has {spec.text!r}"
        needed = [(f.name, f.type == "category") for f in entry.text_input.fields]
    else:
        needed = [(i.column, i.dtype == "string") for i in entry.inputs]
    for column, is_string in needed:
        if column not in (strings if is_string else numbers):
            kind = "string" if is_string else "numeric"
            return f"it needs {kind} input {column!r}, which the current data does not provide"
    return None


@dataclass(frozen=True)
class Gate:
    """What the gate needs from the export stage."""

    policy: Policy
    min_improvement: float
    metric: str
    profile: Profile
    val: SplitRows

    def score(self, model: LoadedModel) -> float | None:
        """`metric` of a model on the validation split (None where it is undefined)."""
        val, profile = self.val, self.profile
        out = model.run(prepare_columns(val.raw, profile.features))
        if not profile.is_classification:
            return metrics.regression(val.y.astype(np.float64), out["value"], None).get(self.metric)
        # float32 graphs give rows that sum to 1 within ~1e-7, which scikit-learn warns about
        proba = out["probabilities"] / out["probabilities"].sum(axis=1, keepdims=True)
        assert model.entry.decision is not None
        labels = decision.labels(proba, model.entry.decision, profile)
        return metrics.classification(val.y, proba, labels, profile).get(self.metric)


def run_gate(
    gate: Gate, registry: Registry | None, candidate: LoadedModel, exported: dict[str, ModelEntry]
) -> tuple[Promotion, str]:
    """The decision (recorded in MLflow, the alias moved when promoted) and the model to serve."""
    score = gate.score(candidate)
    if score is None:
        raise PipelineError(
            f"{gate.metric} is undefined for {candidate.name} on the validation split",
            where="data/processed/val.parquet",
            fix="set export.champion_metric to a metric defined on this data",
        )
    incumbent, promoted, champion = None, False, candidate.name
    reason = "no tracking store (tracking.optional): no incumbent to compare with, no alias to move"
    if registry is not None:
        with mlflow_errors("find the champion alias"):
            holders = registry.holders()
            # the most recently updated when several hold it
            version = max(holders, key=lambda v: v.last_updated_timestamp or 0, default=None)
        why = None
        if version is not None:
            found, why = score_incumbent(registry, version, gate, candidate, exported)
            incumbent = Incumbent(name=version.name, version=str(version.version), score=found)
        promoted, reason = decide_promotion(gate, candidate.entry, score, incumbent, why)
        champion, note = served(promoted, candidate.name, incumbent, exported)
        reason += note
    promotion = Promotion(
        policy=gate.policy,
        metric=f"val.{gate.metric}",
        candidate=candidate.name,
        candidate_score=score,
        incumbent=incumbent,
        promoted=promoted,
        reason=reason,
    )
    if registry is not None:
        with mlflow_errors("move the champion alias and tag the export run"):
            if promoted:
                registry.move_alias(candidate.entry, holders)
            registry.record(promotion, champion)
    log.info("champion gate: %s", reason)
    return promotion, champion


def score_incumbent(
    registry: Registry,
    version: Any,
    gate: Gate,
    candidate: LoadedModel,
    exported: dict[str, ModelEntry],
) -> tuple[float | None, str | None]:
    """The incumbent's validation score, or None and why it cannot be scored here."""
    if _exported_as(version.name, str(version.version), exported) == candidate.name:
        return gate.score(candidate), None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            folder = registry.fetch(version, Path(tmp))
            card = read_file(folder / CARD_FILE, ModelCard)
            why = incompatibility(card, gate.profile)
            if why is not None:
                return None, why
            assert card.entry is not None
            found = gate.score(load_model(folder, card.entry))
        except Exception as exc:  # a download, file or graph that does not work is "incomparable"
            log.warning("incumbent %s v%s not scored: %s", version.name, version.version, exc)
            return None, f"it could not be loaded and run ({str(exc).splitlines()[0]})"
    return found, None if found is not None else f"{gate.metric} is undefined for it"


def _exported_as(registered: str, version: str, exported: dict[str, ModelEntry]) -> str | None:
    """The name of this run's model that is exactly that registered version, if any."""
    for name, entry in exported.items():
        ref = entry.mlflow
        if ref and (ref.registered_model, ref.version) == (registered, version):
            return name
    return None


def decide_promotion(
    gate: Gate, candidate: ModelEntry, score: float, incumbent: Incumbent | None, why: str | None
) -> tuple[bool, str]:
    """Whether the alias moves to the candidate, and why (in words for the report and MLflow)."""
    ref = candidate.mlflow
    mine = (ref.registered_model, ref.version) if ref and ref.registered_model else None
    held = f"{incumbent.name} v{incumbent.version}" if incumbent else ""
    if incumbent is not None and mine == (incumbent.name, incumbent.version):
        return False, f"{held} ({candidate.name}) is this run's best and holds the alias already"
    wish = gate.policy != "never"
    if gate.policy == "never":
        reason = f"export.promote=never: the alias stays {f'on {held}' if held else 'unset'}"
    elif incumbent is None:
        reason = "no model held the champion alias"
    elif gate.policy == "always":
        reason = f"export.promote=always: {candidate.name} replaces {held}"
    elif incumbent.score is None:
        wish = False
        reason = f"{held} is incomparable: {why}; it keeps the alias (promote=always replaces it)"
    else:
        gain = improvement(gate.metric, score, incumbent.score)
        wish = gain > 0 and gain >= gate.min_improvement
        reason = (
            f"{candidate.name} {'beats' if wish else 'does not beat'} {held} by "
            f"export.min_improvement={gate.min_improvement:g} on val.{gate.metric} "
            f"({score:.4f} vs {incumbent.score:.4f})"
        )
    if wish and mine is None:
        return False, f"{reason}; but {candidate.name} is not registered, so the alias cannot move"
    return wish, reason


def served(
    promoted: bool, candidate: str, incumbent: Incumbent | None, exported: dict[str, ModelEntry]
) -> tuple[str, str]:
    """The model served by default (the kept incumbent if exported, else the candidate) and why."""
    if promoted or incumbent is None:
        return candidate, ""
    name = _exported_as(incumbent.name, incumbent.version, exported)
    if name is not None:
        return name, "" if name == candidate else f"; {name} (the incumbent) is served by default"
    return candidate, (
        f"; the incumbent is not among this export's models, so {candidate} (the best of this "
        "run) is served by default while the alias stays"
    )
