"""docs/add-a-model.md is the fourth model of the tests: the page's files are the fixture's."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.docs.add_a_model import doc_files, doc_models_line, doc_stage

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "forest"
ROOT = Path(__file__).resolve().parents[2]


def test_page_files_are_the_fixture_model() -> None:
    files = doc_files()
    assert set(files) == {
        "pipeline/forest/__init__.py",
        "pipeline/forest/core.py",
        "pipeline/forest/__main__.py",
        "configs/forest/default.yaml",
    }
    for rel, body in files.items():
        name = Path(rel).name
        assert (FIXTURE / name).read_text() == body, f"{rel} differs from tests/fixtures/forest"


def test_page_stage_is_the_fixture_stage_and_mirrors_a_shipped_model() -> None:
    _, stage = doc_stage()
    assert stage == yaml.safe_load((FIXTURE / "stage.yaml").read_text())
    shipped = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["baseline"]
    renamed = yaml.safe_load(yaml.safe_dump(shipped).replace("baseline", "forest"))
    assert stage["forest"] == renamed


def test_page_models_line_extends_the_shipped_list() -> None:
    shipped = yaml.safe_load((ROOT / "configs" / "config.yaml").read_text())["models"]
    assert yaml.safe_load(doc_models_line())["models"] == [*shipped, "forest"]
