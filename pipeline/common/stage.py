"""The thin shell around each stage's pure core: compose config, log, time, report errors."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence

from omegaconf import DictConfig

from pipeline.common.config import compose
from pipeline.common.errors import PipelineError
from pipeline.common.logs import setup_logging

log = logging.getLogger("pipeline")


def run_stage(
    name: str, core: Callable[[DictConfig], str], argv: Sequence[str] | None = None
) -> int:
    """Run `core(cfg)` with Hydra overrides from argv; returns the process exit code.

    `core` returns the one-line result ("12,000 rows → data/processed", "test roc_auc=0.91").
    Errors meant for people (`PipelineError`) print one line and exit 1; bugs keep a traceback.
    """
    setup_logging()
    overrides = list(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    try:
        cfg = compose(overrides)
        summary = core(cfg)
    except PipelineError as exc:
        print(f"error: [{name}] {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"error: [{name}] interrupted; earlier outputs are unchanged", file=sys.stderr)
        return 130
    log.info("[%s] done in %.1fs: %s", name, time.perf_counter() - started, summary)
    return 0
