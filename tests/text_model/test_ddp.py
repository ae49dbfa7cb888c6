"""DDP for real on CPU: two gloo processes started the way a user starts them, from the CLI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from serving.schemas import ModelCard, read_file
from tests.text_model.conftest import REPO

RANK_LINE = re.compile(
    r"rank (\d)/(\d) trained: (\d+) optimizer steps, (\d+) samples, weights sha256 (\w+)"
)


@pytest.mark.slow  # two processes each import torch and Lightning, then train and export
def test_two_cpu_processes_train_in_lockstep_and_only_rank_zero_writes(
    processed: Callable[..., Path], tmp_path: Path
) -> None:
    shutil.copytree(processed("binary") / "data", tmp_path / "data")
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    db = tmp_path / "mlflow.db"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{db}",
        "OMP_NUM_THREADS": "1",
    }
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_PORT"):
        env.pop(var, None)
    command = [
        *(sys.executable, "-m", "pipeline.text_model", "profile=tiny", "trainer=ddp"),
        *("trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"),
        # 1,800 training rows, 2 ranks, batch 32: 29 steps an epoch on each rank
        *("text_model.max_steps=40", "text_model.early_stopping_patience=3"),
    ]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]

    ranks = {int(m[0]): m for m in RANK_LINE.findall(done.stderr)}
    assert sorted(ranks) == [0, 1], done.stderr[-3000:]
    for _rank, world, steps, samples, _ in ranks.values():
        assert int(world) == 2
        # every rank saw its own half of the rows: 29 batches of up to 32 per epoch
        assert int(samples) <= int(steps) * 32 and int(samples) > (int(steps) - 2) * 32 - 32
    assert ranks[0][2] == ranks[1][2], "the ranks took different numbers of steps"
    assert ranks[0][4] == ranks[1][4], "weights differ between ranks after training"

    # Rank 0 wrote every output once; rank 1 wrote nothing and opened no MLflow run.
    model_dir = tmp_path / "models" / "trained" / "text_model"
    card = read_file(model_dir / "card.json", ModelCard)
    assert card.parity is not None and card.parity.passed
    assert (model_dir / "hf" / "model.safetensors").is_file()
    assert not list(tmp_path.rglob(".*tmp-*")) and not list(tmp_path.rglob(".*old-*"))
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, "attributes.run_name = 'text_model'")
    assert len(runs) == 1
    assert card.entry is not None and card.entry.mlflow is not None
    assert runs[0].info.run_id == card.entry.mlflow.run_id
