"""The multi-node launch in docs/scaling.md, on one machine: `torchrun -m pipeline.text_model`
with two CPU processes (gloo) in a tiny-profile copy of the project. Lightning must join
torchrun's process group instead of starting its own processes; both ranks train to identical
weights and rank 0 writes the model stage's outputs (models/trained/text_model/, metrics)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from serving.schemas import ModelCard, read_file
from tests.smoke import dvc_repro, make_copy, pipeline_env

pytestmark = pytest.mark.slow


def test_torchrun_two_processes(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    make_copy(project, profile="tiny")  # leaves the checkout's stage outputs behind
    prepared = dvc_repro(project, "etl", timeout=600)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torchrun = str(Path(sys.executable).parent / "torchrun")
    proc = subprocess.run(
        [
            torchrun,
            "--nnodes=1",
            "--nproc-per-node=2",
            "--node-rank=0",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}",
            "--rdzv-id=ship-check",
            "-m",
            "pipeline.text_model",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.strategy=ddp",
            "trainer.num_nodes=1",
        ],
        cwd=project,
        env={**pipeline_env(project), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    trained = dict(re.findall(r"rank (\d)/2 trained: .* weights sha256 ([0-9a-f]+)", log))
    assert set(trained) == {"0", "1"}, log[-4000:]
    assert trained["0"] == trained["1"]  # DDP kept the replicas identical
    model_dir = project / "models" / "trained" / "text_model"
    card = read_file(model_dir / "card.json", ModelCard)
    assert card.entry is not None and card.parity is not None and card.parity.passed
    assert (model_dir / card.entry.file).is_file()
    metrics = json.loads((project / "metrics" / "text_model.json").read_text())
    assert set(metrics) == {"val", "test"} and 0 <= metrics["test"]["roc_auc"] <= 1
    # Written once, by rank 0: no staging folder of a second writer left behind.
    assert not list(project.rglob(".*tmp-*")) and not list(project.rglob(".*old-*"))
