"""Follow docs/add-a-model.md literally: its files, its dvc.yaml stage, its models list."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "add-a-model.md"
# "`path/to/file`:" on a line of its own, then a fenced block: that block is the whole file.
_FILE_BLOCK = re.compile(r"^`([^`\n]+)`:\n\n```[a-z]*\n(.*?)^```$", re.M | re.S)
_BLOCK = re.compile(r"^```(yaml)\n(.*?)^```$", re.M | re.S)


def doc_files(doc: Path = DOC) -> dict[str, str]:
    """The files the page tells a reader to create, path → content."""
    return {path: body for path, body in _FILE_BLOCK.findall(doc.read_text(encoding="utf-8"))}


def doc_stage(doc: Path = DOC) -> tuple[str, dict[str, object]]:
    """The dvc.yaml stage the page shows: (its text as written, parsed)."""
    for _, body in _BLOCK.findall(doc.read_text(encoding="utf-8")):
        parsed = yaml.safe_load(body)
        if isinstance(parsed, dict) and len(parsed) == 1:
            stage = next(iter(parsed.values()))
            if isinstance(stage, dict) and "cmd" in stage:
                return body, parsed
    raise AssertionError(f"{DOC}: no dvc.yaml stage block found")


def doc_models_line(doc: Path = DOC) -> str:
    """The `models: [...]` line the page tells a reader to write."""
    found = re.search(r"^models: \[.*\]$", doc.read_text(encoding="utf-8"), re.M)
    assert found, f"{DOC}: no models line"
    return found.group(0)


def add_model(project: Path) -> str:
    """Apply the page's four steps to a project copy; returns the new model's name."""
    for rel, body in doc_files().items():
        target = project / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
    text, parsed = doc_stage()
    dvc_yaml = project / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + text)
    config = project / "configs" / "config.yaml"
    source = config.read_text(encoding="utf-8")
    updated, n = re.subn(r"(?m)^models: \[.*\]$", doc_models_line(), source)
    assert n == 1, "configs/config.yaml has no models line"
    config.write_text(updated, encoding="utf-8")
    return str(next(iter(parsed)))
