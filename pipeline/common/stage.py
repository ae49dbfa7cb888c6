"""The thin shell around each stage's pure core: compose config, log, lock, report errors."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from omegaconf import DictConfig

from pipeline.common.config import compose
from pipeline.common.errors import PipelineError
from pipeline.common.logs import setup_logging
from pipeline.common.paths import repo_root
from pipeline.common.tracking import process_rank

log = logging.getLogger("pipeline")
LOCK_DIR = Path(".tmp/locks")


class Terminated(Exception):
    """SIGTERM, turned into an exception so that `finally` blocks remove temporary files."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextmanager
def stage_lock(name: str, root: Path) -> Iterator[None]:
    """Hold `.tmp/locks/<name>.lock` (rank 0 only), so a second run of the stage fails at once
    instead of deleting the first run's temporary files; the lock dies with the process."""
    if process_rank() != 0:
        yield
        return
    path = root / LOCK_DIR / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise PipelineError(
                f"another run of stage {name} holds the lock (pid {holder})",
                where=str(path),
                fix="wait for that run to finish, or stop it",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_stage(
    name: str, core: Callable[[DictConfig], str], argv: Sequence[str] | None = None
) -> int:
    """Run `core(cfg)` (it returns a one-line summary) with Hydra overrides from argv; returns
    the exit code: 1 for a PipelineError, 130 / 143 for Ctrl-C / SIGTERM, in one line each."""
    setup_logging()
    previous = signal.signal(signal.SIGTERM, _terminate)
    overrides = list(sys.argv[1:] if argv is None else argv)
    try:
        with stage_lock(name, repo_root()):
            summary = core(compose(overrides))
    except PipelineError as exc:
        print(f"error: [{name}] {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Terminated) as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"error: [{name}] {what}; earlier outputs are unchanged", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    log.info("[%s] %s", name, summary)
    return 0
