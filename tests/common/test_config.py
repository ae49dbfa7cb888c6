"""The Hydra composition, typed validation and the committed params.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from pipeline.common.config import compose, flatten, to_container, validate
from pipeline.common.errors import PipelineError
from pipeline.config.core import render_params
from tests.smoke import ROOT

STAGE_GROUPS = ["data", "generate", "etl", "baseline", "lightgbm", "text_model", "export"]


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_every_dvc_stage_has_a_config_group_and_a_package() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    cfg = compose()
    for name, stage in stages.items():
        assert stage["cmd"] == f"python -m pipeline.{name}", name
        assert (ROOT / "pipeline" / name / "__main__.py").is_file(), name
        if name != "config":
            assert name in cfg, f"stage {name} has no config group"


def test_committed_params_yaml_matches_configs() -> None:
    # params.yaml is what DVC compares; a stale copy would hide config changes from `dvc status`.
    assert (ROOT / "params.yaml").read_text() == render_params(compose()), (
        "params.yaml is stale: run `python -m pipeline.config` and commit it"
    )


def test_tiny_profile_changes_every_stage_group() -> None:
    default, tiny = to_container(compose()), to_container(compose(["profile=tiny"]))
    for group in ["generate", "text_model"]:
        assert default[group] != tiny[group], f"tiny profile does not shrink {group}"


def test_bad_override_is_one_line_error() -> None:
    with pytest.raises(PipelineError) as err:
        compose(["no_such_group.key=1"])
    assert "\n" not in str(err.value)
    assert "no_such_group" in str(err.value)


@dataclass
class _Inner:
    rate: float = 0.1


@dataclass
class _Schema:
    n: int = 3
    name: str = "x"
    inner: _Inner = field(default_factory=_Inner)


def test_validate_types_and_unknown_keys() -> None:
    ok = validate({"n": 5, "inner": {"rate": 0.5}}, _Schema, "demo")
    assert ok == _Schema(n=5, inner=_Inner(rate=0.5))
    with pytest.raises(PipelineError, match=r"demo\.n"):
        validate({"n": "many"}, _Schema, "demo")
    with pytest.raises(PipelineError, match="typo"):
        validate({"typo": 1}, _Schema, "demo")


def test_flatten() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None}) == {
        "a.b": 1,
        "a.c.d": [1, 2],
        "e": None,
    }


def test_compose_outside_project_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"no config\.yaml"):
        compose(config_dir=tmp_path)
