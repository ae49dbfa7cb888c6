"""Register each ONNX file in the MLflow Model Registry and give the champion its alias."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pipeline.common.errors import PipelineError
from pipeline.common.tracking import start_run

log = logging.getLogger(__name__)
CHAMPION_ALIAS = "champion"


def mlflow_register(
    cfg: DictConfig, files: dict[str, Path], champion: str, name_format: str, paths: Any
) -> dict[str, dict[str, Any]]:
    """Log and register every ONNX file in one `export` run; returns per model its registry entry.

    Returns {} when tracking is disabled on purpose (`tracking.optional` and no store).
    """
    inputs = [paths.processed_dir, *(paths.models_dir / name for name in files)]
    with start_run(cfg, "export", inputs) as run:
        if run is None:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for name, path in files.items():
            info = _log_onnx(name, path)
            entry: dict[str, Any] = {"run_id": run.run_id, "model_uri": info.model_uri}
            if run.register_models:
                registered = name_format.format(name=name)
                entry.update(registered_model=registered, version=run.register(info, registered))
            out[name] = entry
        if run.register_models:
            set_champion(
                {n: e["registered_model"] for n, e in out.items()},
                champion,
                out[champion]["version"],
            )
        run.set_tags({"export.champion": champion})
        return out


def _log_onnx(name: str, path: Path) -> Any:
    import mlflow.onnx
    import onnx
    import onnxruntime
    from mlflow.exceptions import MlflowException

    # Listing the requirements skips MLflow's inference of them (seconds per model).
    requirements = [f"onnx=={onnx.__version__}", f"onnxruntime=={onnxruntime.__version__}"]
    try:
        return mlflow.onnx.log_model(
            onnx.load(str(path)),
            name=name,
            save_as_external_data=False,
            pip_requirements=requirements,
        )
    except (MlflowException, OSError) as exc:
        raise PipelineError(
            f"MLflow failed to log {name}: {str(exc).splitlines()[0]}",
            where="tracking",
            fix="check MLFLOW_TRACKING_URI, or set tracking.optional=true",
        ) from exc


def set_champion(registered: dict[str, str], champion: str, version: str) -> None:
    """Alias `champion` on the winner's new version; remove it from the other ONNX models."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    for name, model in registered.items():
        if name == champion:
            client.set_registered_model_alias(model, CHAMPION_ALIAS, version)
            log.info("alias %s → %s version %s", CHAMPION_ALIAS, model, version)
            continue
        with contextlib.suppress(MlflowException):  # the alias was not set on this model
            client.delete_registered_model_alias(model, CHAMPION_ALIAS)
