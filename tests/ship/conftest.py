"""Fixtures for the shipping tests: an export folder laid out as the export stage writes it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from serving.schemas import Contract


@pytest.fixture(scope="session")
def built_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The serving tests' binary export (baseline, forest, text_model; scikit-learn graphs and a
    tokenizer), moved into the export stage's layout: contract.json, <name>/model.onnx."""
    from tests.serving.fixtures import build_apart as build

    export = tmp_path_factory.mktemp("ship") / "export"
    build(export)
    contract = json.loads((export / "contract.json").read_text(encoding="utf-8"))
    for name, entry in contract["models"].items():
        (export / name).mkdir(exist_ok=True)
        (export / entry["file"]).rename(export / name / "model.onnx")
        entry["file"] = f"{name}/model.onnx"
    Contract.model_validate(contract)  # still a valid contract, with every key known
    (export / "contract.json").write_text(json.dumps(contract), encoding="utf-8")
    return export


@pytest.fixture
def export_dir(built_export: Path, tmp_path: Path) -> Path:
    """A copy of the export a test may change."""
    directory = tmp_path / "models" / "export"
    shutil.copytree(built_export, directory)
    return directory
