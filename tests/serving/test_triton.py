"""`python -m serving.triton` builds a Triton / KServe repository from the contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from serving.triton import main


def test_repository_has_every_model_with_its_real_io(export_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "triton"
    assert main(["--models", str(export_dir), "--out", str(out)]) == 0
    repository = out / "model_repository"
    assert sorted(p.name for p in repository.iterdir()) == ["baseline", "forest", "text_model"]
    config = (repository / "baseline" / "config.pbtxt").read_text()
    assert 'name: "channel"' in config and "TYPE_STRING" in config and "dynamic_batching" in config
    text = (repository / "text_model" / "config.pbtxt").read_text()
    assert 'name: "input_ids"' in text and "TYPE_INT64" in text
    onnx = (repository / "baseline" / "1" / "model.onnx").read_bytes()
    assert onnx == (export_dir / "baseline.onnx").read_bytes()
    assert json.loads((out / "contract.json").read_text())["champion"] == "baseline"
    assert "kind: InferenceService" in (out / "inferenceservice.yaml").read_text()


def test_a_changed_model_file_is_refused_in_one_line(
    export_dir: Path, tmp_path: Path, capsys: object
) -> None:
    models = tmp_path / "export"
    shutil.copytree(export_dir, models)
    with open(models / "forest.onnx", "ab") as handle:
        handle.write(b"\0")
    assert main(["--models", str(models), "--out", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists()
