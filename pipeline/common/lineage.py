"""Where a model came from: the git commit (and whether the tree was dirty) and input hashes,
computed as DVC 3 does so they match `dvc.lock`, but from disk: a stage run by hand may read
inputs `dvc.lock` does not describe yet."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def file_md5(path: Path) -> str:
    """md5 of a file's bytes, read in chunks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def input_hash(path: Path) -> str:
    """DVC-style md5 of a file or directory (md5 of the sorted `{"md5", "relpath"}` manifest +
    `.dir`); "missing" when it does not exist."""
    path = Path(path)
    if path.is_file():
        return file_md5(path)
    if not path.is_dir():
        return "missing"
    files = sorted(c.relative_to(path).as_posix() for c in path.rglob("*") if c.is_file())
    entries = [{"md5": file_md5(path / name), "relpath": name} for name in files]
    manifest = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(manifest, usedforsecurity=False).hexdigest() + ".dir"


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(cwd: Path | None = None) -> dict[str, Any]:
    """`{"git_commit": sha | None, "git_dirty": bool | None}`; None outside a git checkout."""
    where = Path(cwd or Path.cwd())
    commit = _git(["rev-parse", "HEAD"], where)
    status = None if commit is None else _git(["status", "--porcelain"], where)
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def lineage(inputs: Iterable[Path], cwd: Path | None = None) -> dict[str, Any]:
    """Git state plus the DVC-style hash of each input path (keyed by the path as given)."""
    return {**git_state(cwd), "data": {Path(p).as_posix(): input_hash(Path(p)) for p in inputs}}
