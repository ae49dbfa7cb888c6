"""Atomic output: a stage killed midway leaves the previous complete output or none, never a part
(a temporary sibling renamed over the target; directories swapped in with two renames)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_TMP_TAG = ".tmp-"
_OLD_TAG = ".old-"


def _publishable(path: Path, directory: bool) -> None:
    # mkstemp/mkdtemp create 0600/0700 entries; outputs are read by other users (a server
    # running as its own user, a CI artifact upload), so give them the usual umask modes.
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if directory else 0o666) & ~mask)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary file path; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}{_TMP_TAG}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _publishable(tmp, directory=False)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Atomically write a text file."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: str | os.PathLike[str], payload: Any) -> Path:
    """Atomically write pretty, key-sorted JSON (stable diffs for DVC metrics)."""
    return write_text(target, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces `target` as a whole on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{_TMP_TAG}", dir=target.parent))
    try:
        yield tmp
        _publishable(tmp, directory=True)
        old = target.with_name(f".{target.name}{_OLD_TAG}{os.getpid()}")
        if target.exists():
            os.replace(target, old)
        # Killed between these two renames, the target is absent (never partial) and
        # `clean_stale` puts the previous version back on the next run.
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def clean_stale(target: str | os.PathLike[str]) -> None:
    """Remove leftovers of a killed run next to `target`; restore a swapped-out previous output."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    for leftover in target.parent.glob(f".{target.name}{_TMP_TAG}*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    for previous in sorted(target.parent.glob(f".{target.name}{_OLD_TAG}*")):
        if not target.exists():
            os.replace(previous, target)
        else:
            shutil.rmtree(previous, ignore_errors=True)
