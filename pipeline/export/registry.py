"""The MLflow side of the champion gate: find the alias, fetch a registered model, move the
alias, tag the `export` run.

Model stages register their graph under the model's name and log their card (and tokenizer) at
their run's root (`pipeline.common.train`).
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
from pipeline.common.paths import CARD_FILE
from serving.schemas import ModelCard, ModelEntry, Promotion, read_file

ALIAS = "champion"


class Registry:
    """The MLflow registry as the gate uses it, and the `export` run that records the decision."""

    def __init__(self, client: Any, uri: str, run_id: str, experiment_id: str) -> None:
        self.client = client
        self.uri = uri
        self.run_id = run_id
        self.experiment_id = experiment_id

    def holders(self) -> list[Any]:
        """The versions holding `champion` that were trained in this project's experiment (one,
        unless set by hand): a store shared with other projects keeps their aliases."""
        names, token = [], None
        while True:
            page = self.client.search_registered_models(max_results=1000, page_token=token)
            names += [m.name for m in page if ALIAS in (m.aliases or {})]
            token = page.token
            if not token:
                break
        versions = [self.client.get_model_version_by_alias(n, ALIAS) for n in names]
        return [
            v for v in versions if v.run_id and self._experiment_of(v.run_id) == self.experiment_id
        ]

    def _experiment_of(self, run_id: str) -> str:
        return str(self.client.get_run(run_id).info.experiment_id)

    def fetch(self, version: Any, dst: Path) -> Path:
        """A folder holding the version's source (the logged graph), with the card and any file
        it names still missing (the tokenizer) taken from the run's root."""
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
        card = download("run", run_id=version.run_id, artifact_path=CARD_FILE)
        shutil.copyfile(card, folder / CARD_FILE)
        entry = read_file(card, ModelCard).entry
        names = [entry.file, *([entry.tokenizer.file] if entry.tokenizer else [])] if entry else []
        for relative in names:
            if not (folder / relative).is_file():
                got = download("run", run_id=version.run_id, artifact_path=relative)
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(got, folder / relative)
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
            "champion": champion,
            "metric": promotion.metric,
            "policy": promotion.policy,
            "candidate": promotion.candidate,
            "candidate_score": promotion.candidate_score,
            "incumbent": f"{inc.name} v{inc.version}" if inc else "none",
            "incumbent_score": score,
            "promoted": promotion.promoted,
            "reason": promotion.reason,
        }
        for key, value in tags.items():
            self.client.set_tag(self.run_id, f"export.{key}", str(value))


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
        if run is None:
            yield None
        else:
            client = MlflowClient(run.tracking_uri)
            yield Registry(client, run.tracking_uri, run.run_id, run.experiment_id)
