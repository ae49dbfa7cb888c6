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

Target = str | os.PathLike[str]


def _publish(tmp: Path, target: Path) -> None:
    """Rename `tmp` over `target` durably, with the usual umask modes: mkstemp/mkdtemp make
    0600/0700 entries, and outputs are read by other users (a server, a CI artifact upload)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~mask)
    os.replace(tmp, target)
    try:  # some filesystems (and Windows) cannot open a directory: the rename is still done
        fd = os.open(target.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: Target) -> Iterator[Path]:
    """Yield a temporary file path; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        _publish(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(target: Target, text: str) -> Path:
    """Atomically write a text file."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: Target, payload: Any) -> Path:
    """Atomically write pretty, key-sorted JSON (stable diffs for DVC metrics)."""
    return write_text(target, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def atomic_dir(target: Target) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces `target` as a whole on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if target.exists():
            os.replace(target, old)
        # Killed between these two renames, the target is absent (never partial) and
        # `clean_stale` puts the previous version back on the next run.
        _publish(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def clean_stale(target: Target) -> None:
    """Remove leftovers of a killed run next to `target`; restore a swapped-out previous output."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    for previous in sorted(target.parent.glob(f".{target.name}.old-*")):
        if target.exists():
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.replace(previous, target)
