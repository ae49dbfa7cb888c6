"""The MLflow side of the champion gate: find the alias, fetch a registered model, move the
alias, tag the `export` run.

Model stages register their graph under the model's name and log their card (and tokenizer) at
their run's root (`pipeline.common.train`). Only versions trained in this project's experiment
(`tracking.experiment`) count as the incumbent, so a store shared with other projects keeps
their aliases. `fetch` takes the graph from the version's source, the card and any other file it
names from the run's artifacts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pipeline.common.errors import PipelineError
from serving.schemas import FileError, ModelCard, ModelEntry, Promotion, read_file

ALIAS = "champion"
CARD_FILE = "card.json"
_SEARCH_DEPTH = 3  # folders deep to look for card.json among a run's artifacts


class Registry:
    """The MLflow registry as the gate uses it, and the `export` run that records the decision."""

    def __init__(self, client: Any, uri: str, run_id: str, experiment_id: str) -> None:
        self.client = client
        self.uri = uri
        self.run_id = run_id
        self.experiment_id = experiment_id

    def holders(self) -> list[str]:
        """Registered models whose `champion` version was trained in this project's experiment
        (one, unless set by hand): a store shared with other projects keeps their aliases."""
        names, token = [], None
        while True:
            page = self.client.search_registered_models(max_results=1000, page_token=token)
            names += [m.name for m in page if ALIAS in (m.aliases or {})]
            token = page.token
            if not token:
                break
        return [n for n in names if self._experiment_of(n) == self.experiment_id]

    def _experiment_of(self, name: str) -> str | None:
        run_id = self.client.get_model_version_by_alias(name, ALIAS).run_id
        return str(self.client.get_run(run_id).info.experiment_id) if run_id else None

    def incumbent(self, holders: list[str]) -> Any:
        """The version holding the alias; the most recently updated when several do."""
        versions = [self.client.get_model_version_by_alias(n, ALIAS) for n in holders]
        return max(versions, key=lambda v: v.last_updated_timestamp or 0, default=None)

    def fetch(self, version: Any, dst: Path) -> Path:
        """A folder holding the version's card.json and the files its entry names.

        The version's source (the logged graph) comes first; the card and any file still
        missing (the tokenizer) come from the run's artifacts, from the folder holding card.json.
        """
        import mlflow.artifacts

        # MLflow draws a progress bar per download, noise in DVC's and CI's logs.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

        def download(into: str, **where: Any) -> Path:
            got = mlflow.artifacts.download_artifacts(
                **where, dst_path=str(dst / into), tracking_uri=self.uri
            )
            return Path(got)

        folder = download("source", artifact_uri=version.source)
        if (folder / CARD_FILE).is_file():
            return folder
        run_folder = self._card_folder(version.run_id)
        if run_folder is None:
            raise FileError(f"run {version.run_id} has no {CARD_FILE} among its artifacts")
        card = download("run", run_id=version.run_id, artifact_path=run_folder + CARD_FILE)
        shutil.copyfile(card, folder / CARD_FILE)
        for relative in _files(read_file(card, ModelCard)):
            if not (folder / relative).is_file():
                got = download("run", run_id=version.run_id, artifact_path=run_folder + relative)
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(got, folder / relative)
        return folder

    def _card_folder(self, run_id: str) -> str | None:
        """The run artifact folder holding card.json ("" for the root, else ending in "/")."""
        level = [""]
        for _ in range(_SEARCH_DEPTH):
            below = []
            for folder in level:
                for item in self.client.list_artifacts(run_id, folder or None):
                    if not item.is_dir and Path(item.path).name == CARD_FILE:
                        return f"{folder}/" if folder else ""
                    below += [item.path] if item.is_dir else []
            level = below
        return None

    def move_alias(self, entry: ModelEntry, holders: list[str]) -> None:
        assert entry.mlflow is not None and entry.mlflow.registered_model and entry.mlflow.version
        for name in holders:
            if name != entry.mlflow.registered_model:
                self.client.delete_registered_model_alias(name, ALIAS)
        self.client.set_registered_model_alias(
            entry.mlflow.registered_model, ALIAS, entry.mlflow.version
        )

    def record(self, promotion: Promotion, champion: str) -> None:
        """Tags on the export run: the decision, both scores and the reason."""
        inc = promotion.incumbent
        tags = {
            "export.champion": champion,
            "export.metric": promotion.metric,
            "export.policy": promotion.policy,
            "export.candidate": promotion.candidate,
            "export.candidate_score": promotion.candidate_score,
            "export.incumbent": f"{inc.name} v{inc.version}" if inc else "none",
            "export.incumbent_score": "incomparable"
            if inc and inc.score is None
            else (inc.score if inc else "none"),
            "export.promoted": promotion.promoted,
            "export.reason": promotion.reason,
        }
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))


@contextmanager
def mlflow_errors(action: str) -> Iterator[None]:
    """MLflow's failures (store down, permission) as one line, like the rest of tracking."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError) as exc:
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise PipelineError(
            f"MLflow failed to {action}: {first}",
            where="tracking",
            fix="check the tracking store (MLFLOW_TRACKING_URI), or set tracking.optional=true",
        ) from None


@contextmanager
def open_registry(cfg: DictConfig | None, inputs: list[Path]) -> Iterator[Registry | None]:
    """The `export` MLflow run and its registry; None without tracking (`cfg` None, or
    `tracking.optional` and no store)."""
    if cfg is None:
        yield None
        return
    from mlflow import MlflowClient

    from pipeline.common.tracking import start_run

    with start_run(cfg, "export", inputs) as run:
        yield (
            None
            if run is None
            else Registry(
                MlflowClient(run.tracking_uri), run.tracking_uri, run.run_id, run.experiment_id
            )
        )


def _files(card: ModelCard) -> list[str]:
    """The files a card's entry names, relative to the card."""
    entry = card.entry
    if entry is None:
        return []
    return [entry.file, *([entry.tokenizer.file] if entry.tokenizer else [])]
