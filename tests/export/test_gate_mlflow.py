"""The champion gate against a real MLflow registry (a SQLite store in tmp): keep, promote,
always, never, incomparable. Slow: MLflow's import and its database migrations take ~20 s."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from pipeline.common.errors import PipelineError
from pipeline.export.core import ExportConfig, export
from serving.schemas import Contract, ModelCard, dump, read_file
from tests.export.conftest import Factory

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty MLflow database, copied by each test (migrating takes seconds)."""
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


class Store:
    """A test's own MLflow store and what the model stages would have registered in it."""

    def __init__(self, db: Path) -> None:
        from mlflow import MlflowClient

        self.uri = f"sqlite:///{db}"
        self.client = MlflowClient(self.uri)
        location = (db.parent / "artifacts").as_uri()
        # The experiment every stage of the project runs in (tracking.experiment).
        self.experiment = self.client.create_experiment("pipeline", artifact_location=location)

    def register(self, root: Path, name: str) -> str:
        """Log and register `models/trained/<name>/` the way the model stages do (the graph as
        a registered MLflow model, the card at the run's root); the card then names the run."""
        from pipeline.common.tracking import start_run

        folder = root / "models" / "trained" / name
        card = read_file(folder / "card.json", ModelCard)
        assert card.entry is not None
        cfg = OmegaConf.create({"seed": 0, "tracking": {"uri": self.uri, "experiment": "pipeline"}})
        with start_run(cfg, name, [folder]) as run:
            assert run is not None
            card = card.model_copy(
                update={"entry": run.log_onnx(folder / card.entry.file, card.entry)}
            )
            run.log_text(dump(card), "card.json")
        (folder / "card.json").write_text(dump(card), encoding="utf-8")
        assert card.entry is not None and card.entry.version != "unversioned"
        return card.entry.version

    def register_folder(self, root: Path, name: str, experiment: str | None = None) -> str:
        """Register `models/trained/<name>/` as one folder of run artifacts (card beside graph),
        from this project's experiment unless another is given."""
        folder = root / "models" / "trained" / name
        run = self.client.create_run(experiment or self.experiment).info
        self.client.log_artifacts(run.run_id, str(folder), "model")
        if not self.client.search_registered_models(f"name = '{name}'"):
            self.client.create_registered_model(name)
        source = f"{run.artifact_uri}/model"
        version = self.client.create_model_version(name, source, run.run_id).version
        self.client.set_terminated(run.run_id)
        return str(version)

    def aliases(self) -> dict[str, str]:
        """registered model → the version holding `champion`."""
        return {
            m.name: str(m.aliases["champion"])
            for m in self.client.search_registered_models()
            if "champion" in m.aliases
        }

    def export(self, root: Path, names: list[str], **config: Any) -> Contract:
        cfg = OmegaConf.create(
            {"seed": 0, "models": names, "tracking": {"uri": self.uri, "experiment": "pipeline"}}
        )
        return export(ExportConfig(**config), names, root, cfg)

    def last_export_tags(self) -> dict[str, str]:
        experiment = self.client.get_experiment_by_name("pipeline")
        runs = self.client.search_runs(
            [experiment.experiment_id],
            "tags.`pipeline.stage` = 'export'",
            order_by=["attributes.start_time DESC"],
        )
        return {k: v for k, v in runs[0].data.tags.items() if k.startswith("export.")}


@pytest.fixture
def store(empty_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    db = tmp_path / "mlruns" / "mlflow.db"
    db.parent.mkdir()
    shutil.copyfile(empty_store, db)
    return Store(db)


def val_auc(contract: Contract, name: str) -> float:
    return contract.models[name].metrics["val"]["roc_auc"]


def test_first_run_promotes_then_a_worse_model_keeps_the_incumbent(
    project: Factory, store: Store
) -> None:
    root = project("binary")
    store.register(root, "sturdy"), store.register(root, "shaky")
    first = store.export(root, ["sturdy", "shaky"])
    assert first.champion == "sturdy" and first.promotion is not None and first.promotion.promoted
    assert first.promotion.reason == "no model held the champion alias"
    assert store.aliases() == {"sturdy": "1"}
    assert store.last_export_tags()["export.promoted"] == "True"

    second = store.export(root, ["shaky"])  # this run's best is the weaker model
    promotion = second.promotion
    assert promotion is not None and not promotion.promoted
    assert promotion.incumbent is not None and promotion.incumbent.name == "sturdy"
    # The incumbent was downloaded from MLflow and re-scored on the current validation split.
    assert promotion.incumbent.score == pytest.approx(val_auc(first, "sturdy"))
    assert promotion.candidate_score == pytest.approx(val_auc(second, "shaky"))
    assert promotion.reason.startswith("shaky does not beat sturdy v1 by export.min_improvement=0")
    assert "not among this export's models" in promotion.reason and second.champion == "shaky"
    assert store.aliases() == {"sturdy": "1"}
    tags = store.last_export_tags()
    assert tags["export.promoted"] == "False" and tags["export.incumbent"] == "sturdy v1"
    assert float(tags["export.incumbent_score"]) == pytest.approx(promotion.incumbent.score)
    assert tags["export.reason"] == promotion.reason


def test_always_moves_the_alias_and_never_keeps_it(project: Factory, store: Store) -> None:
    root = project("binary")
    store.register(root, "sturdy"), store.register(root, "shaky")
    store.client.set_registered_model_alias("sturdy", "champion", "1")
    forced = store.export(root, ["shaky"], promote="always")
    assert forced.promotion is not None and forced.promotion.promoted
    assert store.aliases() == {"shaky": "1"}  # one holder: the alias left sturdy

    kept = store.export(root, ["sturdy", "shaky"], promote="never")
    assert kept.promotion is not None and not kept.promotion.promoted
    assert kept.promotion.candidate == "sturdy" and store.aliases() == {"shaky": "1"}
    # The incumbent is exported in this run (the same registered version): it is served.
    assert kept.champion == "shaky"
    assert kept.promotion.reason == (
        "export.promote=never: the alias stays on shaky v1; "
        "shaky (the incumbent) is served by default"
    )


def test_min_improvement_decides_against_an_exported_incumbent(
    project: Factory, store: Store
) -> None:
    root = project("binary")
    store.register(root, "sturdy"), store.register(root, "shaky")
    store.client.set_registered_model_alias("shaky", "champion", "1")
    strict = store.export(root, ["sturdy", "shaky"], min_improvement=0.5)
    assert strict.promotion is not None and strict.promotion.incumbent is not None
    gap = strict.promotion.candidate_score - (strict.promotion.incumbent.score or 0)
    assert 0 < gap < 0.5 and not strict.promotion.promoted and strict.champion == "shaky"
    assert store.aliases() == {"shaky": "1"}
    won = store.export(root, ["sturdy", "shaky"], min_improvement=gap / 2)
    assert won.promotion is not None and won.promotion.promoted and won.champion == "sturdy"
    assert store.aliases() == {"sturdy": "1"}


def test_incumbent_for_other_data_is_incomparable(project: Factory, store: Store) -> None:
    root, other = project("binary"), project("regression")
    # Registered from a regression project, as one folder of artifacts.
    store.register_folder(other, "sturdy")
    store.client.set_registered_model_alias("sturdy", "champion", "1")
    assert store.register(root, "sturdy") == "2"
    contract = store.export(root, ["sturdy"])
    promotion = contract.promotion
    assert promotion is not None and promotion.incumbent is not None
    assert promotion.incumbent.score is None and not promotion.promoted
    assert promotion.reason.startswith(
        "sturdy v1 is incomparable: it was trained for regression, the data is binary; it keeps"
    )
    assert store.aliases() == {"sturdy": "1"}
    assert store.last_export_tags()["export.incumbent_score"] == "incomparable"
    store.export(root, ["sturdy"], promote="always")
    assert store.aliases() == {"sturdy": "2"}


def test_an_unreachable_store_fails_unless_tracking_is_optional(
    project: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # MLflow sets it on use
    root = project("binary")
    cfg = {"seed": 0, "tracking": {"uri": "http://127.0.0.1:9", "optional": False}}
    with pytest.raises(PipelineError, match="MLflow tracking server unreachable"):
        export(ExportConfig(), ["sturdy"], root, OmegaConf.create(cfg))
    assert not (root / "models/export").exists()
    cfg["tracking"]["optional"] = True  # type: ignore[index]
    contract = export(ExportConfig(), ["sturdy"], root, OmegaConf.create(cfg))
    assert contract.promotion is not None and contract.promotion.reason.startswith(
        "no tracking store"
    )


def test_another_projects_champion_is_left_alone(project: Factory, store: Store) -> None:
    root, other = project("binary"), project("multiclass")
    elsewhere = store.client.create_experiment("another project")
    store.register_folder(other, "tickets", experiment=elsewhere)
    store.client.set_registered_model_alias("tickets", "champion", "1")
    store.register(root, "sturdy")
    contract = store.export(root, ["sturdy"])
    assert contract.promotion is not None and contract.promotion.incumbent is None
    assert contract.promotion.promoted
    assert store.aliases() == {"tickets": "1", "sturdy": "1"}
