"""Compose `configs/` with Hydra's compose API (no run directories, unlike `@hydra.main`; the
same under Lightning's DDP re-launch) and validate parts of it into dataclasses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.common.errors import PipelineError
from pipeline.common.paths import CONFIG_DIR, repo_root

T = TypeVar("T")


def compose(overrides: Sequence[str] = (), config_dir: Path | None = None) -> DictConfig:
    """Compose `configs/config.yaml` with Hydra overrides (`group=option`, `key=value`)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    directory = (config_dir or repo_root() / CONFIG_DIR).resolve()
    if not (directory / "config.yaml").is_file():
        raise PipelineError(
            "no config.yaml found",
            where=str(directory),
            fix="run from the project root (the folder holding configs/)",
        )
    try:
        with initialize_config_dir(config_dir=str(directory), version_base="1.3"):
            # A model named in `models` brings its own group (configs/<name>/default.yaml)
            # without an entry in the defaults list: adding a model edits only that list.
            listed = [o for o in overrides if o.split("=", 1)[0] == "models"]
            first = hydra_compose(config_name="config", overrides=listed)
            extra = [
                f"+{name}=default"
                for name in first.get("models") or []
                if name not in first and (directory / str(name) / "default.yaml").is_file()
            ]
            cfg = hydra_compose(config_name="config", overrides=[*extra, *overrides])
    except (HydraException, OmegaConfBaseException) as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise PipelineError(
            f"invalid configuration: {first_line}",
            where=str(directory),
            fix="check the override spelling against the files under configs/",
        ) from None
    return cfg


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """The resolved configuration as plain dicts and lists (for params.yaml and MLflow)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


def validate(node: Any, schema: type[T], name: str) -> T:
    """Validate a config group against its dataclass; unknown or mistyped keys fail in one line."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        msg = str(exc).strip().splitlines()[0]
        raise PipelineError(
            f"config key '{name}.{key}': {msg}",
            where=f"{CONFIG_DIR}/{name}",
            fix=f"compare with the fields of {schema.__module__}.{schema.__name__}",
        ) from None
    assert isinstance(obj, schema)
    return obj


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested config into dotted keys (MLflow params are flat)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
