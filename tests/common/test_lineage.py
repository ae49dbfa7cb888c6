"""Lineage: input hashes match DVC's, git state is read (or absent) without failing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.common.lineage import git_state, input_hash, lineage


def _tree(root: Path) -> Path:
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "a.txt").write_bytes(b"hello\n")
    (root / "d" / "sub" / "b.txt").write_bytes(b"x\r\ny\n")
    (root / "d" / "sub" / "c.bin").write_bytes(b"z")
    (root / "f.txt").write_bytes(b"one\r\n")
    return root


def test_hashes_equal_what_dvc_add_records(tmp_path: Path) -> None:
    # Expected values written by `dvc add d f.txt` (DVC 3.67) on the same files.
    root = _tree(tmp_path)
    assert input_hash(root / "d") == "d45c8e91464e11b7f7e8213de9f92790.dir"
    assert input_hash(root / "f.txt") == "444bbb761e4019a61231b6f54ab82280"
    assert input_hash(root / "absent") == "missing"


def test_directory_hash_changes_with_content(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    before = input_hash(root / "d")
    (root / "d" / "sub" / "c.bin").write_bytes(b"Z")
    assert input_hash(root / "d") != before


def test_outside_git_the_commit_is_none(tmp_path: Path) -> None:
    assert git_state(tmp_path) == {"git_commit": None, "git_dirty": None}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git binary")
def test_git_commit_and_dirty_flag(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    head = git("rev-parse", "HEAD")
    assert git_state(tmp_path) == {"git_commit": head, "git_dirty": False}
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_state(tmp_path) == {"git_commit": head, "git_dirty": True}
    info = lineage([tmp_path / "a.py"], cwd=tmp_path)
    assert info["data"] == {(tmp_path / "a.py").as_posix(): input_hash(tmp_path / "a.py")}
