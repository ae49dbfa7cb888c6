"""DVC remote storage as docs/scaling.md shows it: push from one clone, pull into another.

A local directory stands in for the bucket (same commands; only the URL differs for s3://,
gs://, azure://, ssh://).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def sh(cwd: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_push_to_remote_and_pull_into_a_fresh_clone(tmp_path: Path) -> None:
    origin, storage, clone = tmp_path / "origin", tmp_path / "storage", tmp_path / "clone"
    origin.mkdir()
    sh(origin, "git", "init", "-q")
    sh(origin, "dvc", "init", "-q")
    (origin / "dvc.yaml").write_text(
        "stages:\n"
        "  train:\n"
        "    cmd: python -c \"import pathlib; p = pathlib.Path('models/m'); "
        "p.mkdir(parents=True); (p / 'weights.bin').write_bytes(bytes(range(256)) * 64)\"\n"
        "    outs: [models/m]\n"
    )
    sh(origin, "dvc", "remote", "add", "-d", "storage", str(storage))
    sh(origin, "dvc", "repro")
    sh(origin, "git", "add", "-A")
    sh(origin, "git", "commit", "-q", "-m", "model")
    assert "2 files pushed" in sh(origin, "dvc", "push")  # the file and the directory's manifest
    assert any(p.is_file() for p in storage.rglob("*"))

    sh(tmp_path, "git", "clone", "-q", str(origin), str(clone))
    assert not (clone / "models" / "m").exists()  # git holds only the pointer (dvc.lock)
    sh(clone, "dvc", "pull")
    weights = clone / "models" / "m" / "weights.bin"
    assert weights.read_bytes() == (origin / "models" / "m" / "weights.bin").read_bytes()
    # Pulled outputs match dvc.lock: nothing to re-run in the clone.
    assert "Data and pipelines are up to date" in sh(clone, "dvc", "status")
