"""The stage shell: a second run of a stage is refused while the first holds the lock, and
SIGTERM ends a stage in one line with its temporary files removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.common.errors import PipelineError
from pipeline.common.stage import stage_lock
from tests.smoke import ROOT

# A stage whose core writes into an atomic directory, says so on stdout, then waits to be
# stopped; run as a script in a project folder of its own.
STAGE = textwrap.dedent(
    """
    import sys, time
    from pipeline.common.io import atomic_dir
    from pipeline.common.stage import run_stage

    def core(cfg):
        with atomic_dir("out") as tmp:
            (tmp / "part").write_text("half")
            print("writing", flush=True)
            time.sleep(60)
        return "done"

    sys.exit(run_stage("slow", core, []))
    """
)


def _project(tmp_path: Path) -> Path:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "config.yaml").write_text("seed: 1\n")
    (tmp_path / "stage.py").write_text(STAGE)
    return tmp_path


def _start(project: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "stage.py"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing", proc.stderr.read() if proc.stderr else ""
    return proc


def test_second_run_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    project = _project(tmp_path)
    first = _start(project)
    try:
        second = subprocess.run(
            [sys.executable, "stage.py"],
            cwd=project,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "another run of stage slow holds the lock" in lines[0], lines
        assert f"pid {first.pid}" in lines[0]
        # The first run's temporary directory survived the second run.
        assert list(project.glob(".out.tmp-*/part"))
    finally:
        first.kill()
        first.wait(timeout=30)


def test_sigterm_is_one_line_and_removes_temporary_files(tmp_path: Path) -> None:
    project = _project(tmp_path)
    proc = _start(project)
    assert list(project.glob(".out.tmp-*"))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert err.strip().splitlines() == ["error: [slow] terminated; earlier outputs are unchanged"]
    assert not list(project.glob(".out.tmp-*")), "temporary files left after SIGTERM"
    assert not (project / "out").exists()


def test_lock_is_released_and_reentrant_across_runs(tmp_path: Path) -> None:
    with stage_lock("s", tmp_path):
        pass
    with stage_lock("s", tmp_path):  # released when the first block ended
        pass


def test_lock_refuses_a_second_holder_in_another_process(tmp_path: Path) -> None:
    code = (
        "import time, pathlib; from pipeline.common.stage import stage_lock\n"
        f"with stage_lock('s', pathlib.Path({str(tmp_path)!r})):\n"
        "    print('held', flush=True); time.sleep(30)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(PipelineError, match="holds the lock"), stage_lock("s", tmp_path):
            pass
        assert time.monotonic() - started < 5  # refused at once, never waits
    finally:
        holder.kill()
        holder.wait(timeout=30)
