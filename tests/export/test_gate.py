"""The champion gate's decisions, without a tracking store (MLflow runs: test_gate_mlflow.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.common.data import read_rows
from pipeline.export import gate
from serving.schemas import (
    GraphInput,
    Incumbent,
    MlflowRef,
    ModelCard,
    ModelEntry,
    Outputs,
    Profile,
    read_file,
)
from tests.export.conftest import Factory


def entry(name: str, version: str | None = "1", **metrics: float) -> ModelEntry:
    ref = (
        MlflowRef(run_id="r", experiment_id="0", registered_model=name, version=version)
        if version
        else None
    )
    outputs = Outputs(probabilities="p")
    return ModelEntry(
        name=name,
        kind="tabular",
        file="model.onnx",
        sha256="0" * 64,
        outputs=outputs,
        metrics={"val": metrics},
        mlflow=ref,
    )


@pytest.fixture(scope="module")
def settings(built: Factory) -> dict[str, gate.Gate]:
    """policy → gate settings on the binary fixture (metric roc_auc)."""
    root = built("binary")
    profile = read_file(root / "data/processed/profile.json", Profile)
    val = read_rows(root / "data/processed", "val", profile)
    return {p: gate.Gate(p, 0.0, "roc_auc", profile, val) for p in ("always", "if_better", "never")}  # type: ignore[arg-type]


def decide(
    g: gate.Gate,
    score: float,
    incumbent: Incumbent | None,
    cand: ModelEntry | None = None,
    why: str | None = None,
) -> tuple[bool, str]:
    return gate.decide_promotion(g, cand or entry("new"), score, incumbent, why)


def test_if_better_moves_the_alias_only_for_a_real_win(settings: dict[str, gate.Gate]) -> None:
    g = settings["if_better"]
    old = Incumbent(name="old", version="3", score=0.80)
    assert decide(g, 0.85, None) == (True, "no model held the champion alias")
    promoted, reason = decide(g, 0.85, old)
    assert promoted and reason == (
        "new beats old v3 by export.min_improvement=0 on val.roc_auc (0.8500 vs 0.8000)"
    )
    assert not decide(g, 0.80, old)[0]  # a tie is not a win
    assert not decide(g, 0.79, old)[0]
    strict = gate.Gate("if_better", 0.1, "roc_auc", g.profile, g.val)
    promoted, reason = decide(strict, 0.85, old)
    assert not promoted and "does not beat old v3 by export.min_improvement=0.1" in reason


def test_lower_is_better_metrics_win_by_going_down(settings: dict[str, gate.Gate]) -> None:
    g = settings["if_better"]
    rmse = gate.Gate("if_better", 0.5, "rmse", g.profile, g.val)
    old = Incumbent(name="old", version="1", score=12.0)
    assert decide(rmse, 11.0, old)[0]
    assert not decide(rmse, 11.8, old)[0]  # better, but by less than min_improvement
    assert not decide(rmse, 13.0, old)[0]


def test_policies_incomparable_and_unregistered(settings: dict[str, gate.Gate]) -> None:
    old = Incumbent(name="old", version="2", score=None)
    promoted, reason = decide(settings["if_better"], 0.9, old, why="its labels differ")
    assert not promoted and reason.startswith("old v2 is incomparable: its labels differ; it keeps")
    assert decide(settings["always"], 0.1, old)[0]
    assert decide(settings["always"], 0.1, Incumbent(name="old", version="2", score=0.9))[0]
    promoted, reason = decide(
        settings["never"], 0.99, Incumbent(name="old", version="2", score=0.5)
    )
    assert not promoted and reason == "export.promote=never: the alias stays on old v2"
    assert decide(settings["never"], 0.99, None) == (
        False,
        "export.promote=never: the alias stays unset",
    )
    promoted, reason = decide(settings["if_better"], 0.9, None, entry("new", version=None))
    assert not promoted and reason.endswith("but new is not registered, so the alias cannot move")
    holder = Incumbent(name="new", version="1", score=0.9)
    promoted, reason = decide(settings["always"], 0.9, holder)
    assert not promoted and "holds the alias already" in reason


def test_served_model_is_the_kept_incumbent_when_exported() -> None:
    exported = {"a": entry("a", "4"), "b": entry("b", "7")}
    kept = Incumbent(name="b", version="7", score=0.9)
    assert gate.served(True, "a", kept, exported) == ("a", "")
    assert gate.served(False, "a", kept, exported) == (
        "b",
        "; b (the incumbent) is served by default",
    )
    older = Incumbent(name="b", version="6", score=0.9)  # this run retrained b: not the incumbent
    champion, note = gate.served(False, "a", older, exported)
    assert champion == "a" and "not among this export's models" in note


def test_candidate_is_the_best_by_the_metric_direction() -> None:
    exported = {
        "a": entry("a", roc_auc=0.7, log_loss=0.5),
        "b": entry("b", roc_auc=0.9, log_loss=0.6),
    }
    assert gate.pick_candidate(exported, "roc_auc") == "b"
    assert gate.pick_candidate(exported, "log_loss") == "a"
    tied = {"a": entry("a", roc_auc=0.9), "b": entry("b", roc_auc=0.9)}
    assert gate.pick_candidate(tied, "roc_auc") == "a"  # the first listed among equals


def test_incompatible_cards_say_why(built: Factory) -> None:
    root = built("binary")
    profile = read_file(root / "data/processed/profile.json", Profile)
    card = read_file(root / "models/trained/sturdy/card.json", ModelCard)
    assert gate.incompatibility(card, profile) is None
    text = read_file(root / "models/trained/reader/card.json", ModelCard)
    assert gate.incompatibility(text, profile) is None
    assert "trained for regression" in str(
        gate.incompatibility(card.model_copy(update={"task": "regression"}), profile)
    )
    relabelled = card.model_copy(update={"labels": ["yes", "no"]})
    assert "labels ['yes', 'no'] differ" in str(gate.incompatibility(relabelled, profile))
    assert card.entry is not None
    needs = card.entry.model_copy(
        update={
            "inputs": [*card.entry.inputs, GraphInput(name="s", column="salary", dtype="float32")]
        }
    )
    why = gate.incompatibility(card.model_copy(update={"entry": needs}), profile)
    assert why == "it needs numeric input 'salary', which the current data does not provide"
    as_number = card.entry.model_copy(
        update={"inputs": [GraphInput(name="c", column="city", dtype="float32")]}
    )
    assert "numeric input 'city'" in str(
        gate.incompatibility(card.model_copy(update={"entry": as_number}), profile)
    )


def test_no_store_means_no_incumbent(settings: dict[str, gate.Gate], built: Factory) -> None:
    from serving.runtime import load_model

    root = Path(built("binary")) / "models/trained/sturdy"
    card = read_file(root / "card.json", ModelCard)
    assert card.entry is not None
    promotion, champion = gate.run_gate(
        settings["always"], None, load_model(root, card.entry), {"sturdy": card.entry}
    )
    assert champion == "sturdy" and not promotion.promoted and promotion.incumbent is None
    assert promotion.reason.startswith("no tracking store")
    assert promotion.candidate_score == pytest.approx(card.entry.metrics["val"]["roc_auc"])
