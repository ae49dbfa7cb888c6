"""Atomic outputs: a writer killed midway leaves the previous complete output or none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.common.io import atomic_dir, atomic_path, clean_stale, write_json

# Writes a directory of numbered files slowly, announcing progress, so the parent can kill it
# in the middle of the write.
_SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pipeline.common.io import atomic_dir
    with atomic_dir(Path(sys.argv[1])) as tmp:
        for i in range(1000):
            (tmp / f"part-{i}.txt").write_text("new")
            if i == 5:
                print("halfway", flush=True)
            time.sleep(0.01)
    """
)


def test_atomic_path_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert target.read_text().strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_dir_swaps_whole_directory(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("2")
        raise RuntimeError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    with atomic_dir(target) as tmp:
        (tmp / "c.txt").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("had_previous", [True, False])
def test_sigkill_mid_write_leaves_previous_or_nothing(tmp_path: Path, had_previous: bool) -> None:
    target = tmp_path / "out"
    if had_previous:
        with atomic_dir(target) as tmp:
            (tmp / "old.txt").write_text("old")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(target)], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"halfway"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    if had_previous:
        assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    else:
        assert not target.exists()
    clean_stale(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out"] if had_previous else [])


def test_clean_stale_restores_swapped_out_previous(tmp_path: Path) -> None:
    # Simulates a kill between the two renames of atomic_dir: only the old copy exists.
    old = tmp_path / ".out.old-123"
    old.mkdir()
    (old / "keep.txt").write_text("previous")
    clean_stale(tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "previous"
