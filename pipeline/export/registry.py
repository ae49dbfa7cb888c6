"""The MLflow side of the champion gate: find the alias, fetch a registered model (`common.train`
logs its card and tokenizer at the run's root), move the alias, tag the `export` run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pipeline.common.paths import CARD_FILE
from pipeline.common.tracking import Run, start_run
from serving.schemas import ModelCard, ModelEntry, Promotion, read_file

ALIAS = "champion"


@dataclass(frozen=True)
class Registry:
    """The MLflow registry as the gate uses it, and the `export` run that records the decision."""

    client: Any
    run: Run

    def holders(self) -> list[Any]:
        """The versions holding `champion` that were trained in this project's experiment (one,
        unless set by hand): a store shared with other projects keeps their aliases."""
        import mlflow

        # The fluent search pages through every model, in the store `start_run` set.
        held = [m.name for m in mlflow.search_registered_models() if ALIAS in (m.aliases or {})]
        versions = [self.client.get_model_version_by_alias(n, ALIAS) for n in held]
        mine = self.run.experiment_id
        return [
            v
            for v in versions  # a version registered by hand may name no run
            if v.run_id and self.client.get_run(v.run_id).info.experiment_id == mine
        ]

    def fetch(self, version: Any, dst: Path) -> Path:
        """A folder holding the version's source (the logged graph), with the card and any file
        it names (the tokenizer) taken from the run's root where the source lacks them."""
        import mlflow.artifacts

        # MLflow draws a progress bar per download, noise in DVC's and CI's logs.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

        download = partial(mlflow.artifacts.download_artifacts, tracking_uri=self.run.tracking_uri)

        def complete(relative: str) -> None:
            if not (folder / relative).is_file():
                download(run_id=version.run_id, artifact_path=relative, dst_path=str(folder))

        folder = Path(download(artifact_uri=version.source, dst_path=str(dst)))
        complete(CARD_FILE)
        entry = read_file(folder / CARD_FILE, ModelCard).entry
        if entry is not None:
            for relative in [entry.file, *([entry.tokenizer.file] if entry.tokenizer else [])]:
                complete(relative)
        return folder

    def move_alias(self, entry: ModelEntry, holders: list[Any]) -> None:
        """The alias to the entry's registered version, off every other holder."""
        assert entry.mlflow is not None and entry.mlflow.registered_model and entry.mlflow.version
        for version in holders:
            if version.name != entry.mlflow.registered_model:
                self.client.delete_registered_model_alias(version.name, ALIAS)
        self.client.set_registered_model_alias(
            entry.mlflow.registered_model, ALIAS, entry.mlflow.version
        )

    def record(self, promotion: Promotion, champion: str) -> None:
        """Tags on the export run: the decision, both scores and the reason."""
        inc = promotion.incumbent
        score = "none" if inc is None else "incomparable" if inc.score is None else inc.score
        tags = {
            **promotion.model_dump(exclude={"incumbent"}),
            "champion": champion,
            "incumbent": f"{inc.name} v{inc.version}" if inc else "none",
            "incumbent_score": score,
        }
        for key, value in tags.items():
            self.client.set_tag(self.run.run_id, f"export.{key}", str(value))


@contextmanager
def open_registry(cfg: DictConfig, inputs: list[Path]) -> Iterator[Registry | None]:
    """The `export` MLflow run and its registry; None without a tracking store."""
    with start_run(cfg, "export", inputs) as run:
        if run is None:
            yield None
        else:
            from mlflow import MlflowClient

            yield Registry(MlflowClient(run.tracking_uri), run)
