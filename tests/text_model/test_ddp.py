"""DDP for real on CPU: two gloo processes started the way a user starts them, from the CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.common.dataset import Profile

REPO = Path(__file__).resolve().parents[2]
RANK_LINE = re.compile(
    r"rank (\d)/(\d) trained: (\d+) optimizer steps, (\d+) samples, weights sha256 (\w+)"
)


def test_two_cpu_processes_train_in_lockstep_and_only_rank_zero_writes(
    project: Path, make_processed: Callable[..., Profile]
) -> None:
    make_processed(project / "data/processed", rows=(640, 128, 128))
    shutil.copytree(REPO / "configs", project / "configs")
    db = project / "mlflow.db"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{db}",
        "OMP_NUM_THREADS": "1",  # one thread per rank: two ranks share the test machine's CPUs
    }
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_PORT"):
        env.pop(var, None)
    command = [
        *(sys.executable, "-m", "pipeline.text_model", "profile=tiny", "trainer=ddp"),
        *("trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"),
        *("text_model.max_epochs=2", "text_model.lr=1e-2"),
    ]
    done = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]

    ranks = {int(m[0]): m for m in RANK_LINE.findall(done.stderr)}
    assert sorted(ranks) == [0, 1], done.stderr[-3000:]
    for _rank, world, steps, samples, _ in ranks.values():
        assert int(world) == 2
        assert int(steps) == 20  # 640 texts / 2 ranks / batch 32 x 2 epochs
        assert int(samples) == 640  # each rank saw its own half of the data, twice
    assert ranks[0][4] == ranks[1][4], "weights differ between ranks after training"

    # Rank 0 wrote every output once; rank 1 wrote nothing and opened no MLflow run.
    model_dir = project / "models/text_model"
    assert (model_dir / "hf/model.safetensors").is_file()
    assert not list(project.rglob(".*tmp-*")) and not list(project.rglob(".*old-*"))
    assert json.loads((project / "metrics/text_model.json").read_text())["test"]["accuracy"] > 0.8
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "attributes.run_name = 'text_model'"
    )
    assert len(runs) == 1
    run = json.loads((model_dir / "run.json").read_text())
    assert runs[0].info.run_id == run["run_id"]
    assert [str(v.version) for v in client.search_model_versions("name = 'text_model'")] == ["1"]
    assert done.stderr.count("MLflow run ") == 1
