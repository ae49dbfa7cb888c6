"""A real stage killed with SIGKILL mid-run leaves no partial output, and the re-run is clean."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.smoke import ROOT

STAGE_OUT = Path("data/raw/demo")


def _generate(cwd: Path, *overrides: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.generate", *overrides],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the kill reaches its worker processes
    )


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_sigkill_mid_stage_keeps_previous_output_and_rerun_recovers(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    small = ["generate.rows=3000", "generate.workers=1"]
    assert _generate(tmp_path, *small).wait(timeout=120) == 0
    out = tmp_path / STAGE_OUT
    previous = _snapshot(out)
    assert previous, "the first run wrote nothing"

    # A run large enough to still be writing when it is killed.
    proc = _generate(tmp_path, "generate.rows=3000000", "generate.part_rows=300000")
    deadline = time.monotonic() + 120
    while not any(out.parent.glob(f".{out.name}.tmp-*/*")):
        assert proc.poll() is None, "the large run finished before it could be killed"
        assert time.monotonic() < deadline, "the large run never started writing"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    assert _snapshot(out) == previous, "a killed run changed the previous output"
    assert _generate(tmp_path, *small).wait(timeout=120) == 0
    assert _snapshot(out) == previous, "the same config must give the same files"
    leftovers = [p.name for p in out.parent.iterdir() if p.name != out.name]
    assert leftovers == [], f"temporary leftovers after the clean re-run: {leftovers}"
