"""MLflow tracking: one run per stage with lineage tags; each model stage registers its final
ONNX graph under the model's name and logs its native model, unregistered, in its own flavor."""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pipeline.common.config import flatten, to_container, validate
from pipeline.common.errors import PipelineError
from pipeline.common.lineage import lineage
from serving.schemas import MlflowRef, ModelEntry

log = logging.getLogger(__name__)

_MAX_PARAM_CHARS = 6000  # MLflow rejects longer param values
# MLflow keys allow word characters, ".", "-", " " (plus ":" and "/", not on Windows or as paths);
# a user's column names reach the keys (`data.bounds.Weight (kg)`), so anything else becomes "_".
_PARAM_KEY_UNSAFE = re.compile(r"[^\w.\- ]")
_RANK_VARS = ("RANK", "LOCAL_RANK", "SLURM_PROCID")  # first one set wins
_SKLEARN_REQUIREMENTS = ("scikit-learn", "skops", "numpy", "scipy", "pandas")


def _pins(packages: Sequence[str]) -> list[str]:
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in dict.fromkeys(packages)]


@dataclass
class TrackingConfig:
    """`configs/tracking/`: where runs go and how strict tracking is."""

    uri: str = "sqlite:///mlflow.db"  # MLFLOW_TRACKING_URI, when set, wins over this
    experiment: str = "pipeline"
    # false: a tracking failure fails the stage; true: warn and train without MLflow.
    optional: bool = False
    register: bool = True  # register each model's ONNX graph in the Model Registry
    enabled: bool = True  # false: no MLflow at all (quick local runs, tests)


def tracking_uri(cfg: TrackingConfig, cwd: Path | None = None) -> str:
    """MLFLOW_TRACKING_URI, else the config, with a relative SQLite path anchored at the
    project root: `dvc exp run --queue` runs in a throwaway copy under `.dvc/tmp/exps/`."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.uri
    if not uri.startswith("sqlite:///") or uri.startswith("sqlite:////"):
        return uri
    root = str((cwd or Path.cwd()).resolve()).split("/.dvc/tmp/exps/")[0]
    return f"sqlite:///{Path(root) / uri.removeprefix('sqlite:///')}"


def process_rank() -> int:
    """This process's global rank: RANK, else LOCAL_RANK, else SLURM_PROCID, else 0."""
    return next((int(os.environ[v]) for v in _RANK_VARS if os.environ.get(v)), 0)


class Run:
    """A live MLflow run; every call fails loudly (as PipelineError) when MLflow does."""

    def __init__(self, run_id: str, experiment_id: str, uri: str, register_models: bool) -> None:
        self.run_id, self.experiment_id = run_id, experiment_id
        self.tracking_uri, self.register_models = uri, register_models

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log flat params; keys made MLflow-safe, values stringified and cut to its limit."""
        import mlflow

        clean = {
            _PARAM_KEY_UNSAFE.sub("_", k): str(v)[:_MAX_PARAM_CHARS] for k, v in params.items()
        }
        with mlflow_errors("log params"):
            mlflow.log_params(clean, run_id=self.run_id)

    def log_metrics(self, metrics: Mapping[str, Mapping[str, float]]) -> None:
        """Log `{"val": {"roc_auc": ...}}` as flat `val_roc_auc` metrics."""
        import mlflow

        flat = {f"{split}_{k}": float(v) for split, ms in metrics.items() for k, v in ms.items()}
        with mlflow_errors("log metrics"):
            mlflow.log_metrics(flat, run_id=self.run_id)

    def log_artifacts(self, path: Path, artifact_path: str | None = None) -> None:
        """Upload a file or a directory's content."""
        import mlflow

        path = Path(path)
        with mlflow_errors(f"log artifacts from {path}"):
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path, run_id=self.run_id)
            else:
                mlflow.log_artifact(str(path), artifact_path, run_id=self.run_id)

    def log_sklearn_model(
        self, model: Any, input_example: Any, requirements: Sequence[str] = ()
    ) -> None:
        """Log a fitted estimator as `native` (skops, unregistered), pinning `requirements`."""
        import mlflow.sklearn
        import skops.io
        from mlflow.models import infer_signature

        # The model was fitted in this process, so every type in it is trusted for reloading.
        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
        method = "predict_proba" if hasattr(model, "predict_proba") else "predict"
        signature = infer_signature(input_example, getattr(model, method)(input_example))
        with mlflow_errors("log the native model"):
            mlflow.sklearn.log_model(
                model,
                name="native",
                serialization_format="skops",
                skops_trusted_types=trusted,
                signature=signature,
                input_example=input_example,
                pyfunc_predict_fn=method,
                # Explicit pins: MLflow's inference of them re-imports the model (seconds).
                pip_requirements=_pins([*_SKLEARN_REQUIREMENTS, *requirements]),
            )

    def log_onnx(self, path: Path, entry: ModelEntry) -> ModelEntry:
        """Log (and register, when `register`) the final graph; the entry gains its reference."""
        import mlflow.onnx
        import onnx

        name = entry.name if self.register_models else None
        with mlflow_errors(f"log the ONNX model {entry.name}"):
            info = mlflow.onnx.log_model(
                onnx.load(str(path)),
                name="model",
                registered_model_name=name,
                save_as_external_data=False,  # one file, the bytes serving checks
                pip_requirements=_pins(["onnx", "onnxruntime"]),
            )
        version = info.registered_model_version
        version = None if version is None else str(version)
        ref = MlflowRef(
            run_id=self.run_id,
            experiment_id=self.experiment_id,
            registered_model=name,
            version=version,
        )
        return entry.model_copy(update={"mlflow": ref, "version": version or entry.version})

    def log_text(self, text: str, artifact_file: str) -> None:
        import mlflow

        with mlflow_errors(f"log {artifact_file}"):
            mlflow.log_text(text, artifact_file, run_id=self.run_id)

    @contextmanager
    def child(self, name: str) -> Iterator[Run]:
        """A nested run (one Optuna trial, say) under this run."""
        import mlflow

        with mlflow_errors(f"start nested run {name}"):
            active = mlflow.start_run(run_name=name, experiment_id=self.experiment_id, nested=True)
        with active:
            yield Run(active.info.run_id, self.experiment_id, self.tracking_uri, False)


@contextmanager
def mlflow_errors(action: str) -> Iterator[None]:
    """Turn MLflow and connection failures into a one-line PipelineError."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError) as exc:
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise PipelineError(
            f"MLflow failed to {action}: {first}",
            # user:password@ in a server URI stays out of logs
            where=re.sub(r"//[^/@]*@", "//", os.environ.get("MLFLOW_TRACKING_URI") or "tracking"),
            fix="check the tracking server / MLFLOW_TRACKING_URI, or set tracking.optional=true "
            "to run the stage without tracking",
        ) from exc


def _open(cfg: TrackingConfig, uri: str, stage: str, tags: dict[str, Any]) -> Any:
    import mlflow

    if uri.startswith(("http://", "https://")):  # fail fast, not after MLflow's minutes of retries
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5.0).close()
        except OSError as exc:
            raise PipelineError(
                f"MLflow tracking server unreachable ({exc})",
                where=uri,
                fix="start the server, fix MLFLOW_TRACKING_URI, or set tracking.optional=true",
            ) from None
    with mlflow_errors("open the tracking store"):
        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(cfg.experiment)
        if found is not None:
            experiment_id = str(found.experiment_id)
        else:
            # With the embedded SQLite store, artifacts go beside the database (not the cwd).
            db = Path(uri.removeprefix("sqlite:///")).resolve()
            where = (db.parent / "mlartifacts").as_uri() if uri.startswith("sqlite:///") else None
            experiment_id = str(client.create_experiment(cfg.experiment, artifact_location=where))
        return mlflow.start_run(run_name=stage, experiment_id=experiment_id, tags=tags)


@contextmanager
def start_run(cfg: DictConfig, stage: str, inputs: Sequence[Path]) -> Iterator[Run | None]:
    """The stage's MLflow run with config params and lineage tags; None on a non-zero DDP rank,
    with `tracking.enabled=false`, or with `tracking.optional` and no reachable store."""
    tcfg = validate(cfg.get("tracking", {}), TrackingConfig, "tracking")
    if process_rank() != 0 or not tcfg.enabled:
        yield None
        return
    uri = tracking_uri(tcfg)
    info = lineage(inputs)
    tags: dict[str, Any] = {
        "pipeline.stage": stage,
        "git_commit": info["git_commit"] or "none",
        "git_dirty": info["git_dirty"],
        **{f"data.md5.{path}": md5 for path, md5 in info["data"].items()},
    }
    if info["git_commit"]:
        tags["mlflow.source.git.commit"] = info["git_commit"]
    try:
        active = _open(tcfg, uri, stage, tags)
    except PipelineError as exc:
        if not tcfg.optional:
            raise
        log.warning("tracking disabled for this run (tracking.optional=true): %s", exc)
        yield None
        return
    with active:
        run = Run(active.info.run_id, active.info.experiment_id, uri, tcfg.register)
        run.log_params(flatten(to_container(cfg)))
        run.log_text(json.dumps(info, indent=2), "lineage.json")
        log.info("MLflow run %s (%s) in %s", run.run_id, stage, uri)
        yield run
