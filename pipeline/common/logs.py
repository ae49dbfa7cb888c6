"""Logging set-up for stage entrypoints, with deliberate filters for known third-party noise."""

from __future__ import annotations

import logging
import os
import sys
import warnings

# Each pattern silences one known, harmless warning; anything new still shows.
_NOISY_WARNINGS = (
    r".*does not have many workers.*",  # Lightning: the DataLoader worker count is configured
    r".*You are using a CUDA device .* that has Tensor Cores.*",  # Lightning's precision hint
    r".*Failed to import Git.*",  # MLflow: git cannot describe a temporary copy of the repo
    r".*isinstance\(treespec, LeafSpec\).*",  # torch 2.13 pytree deprecation, inside Lightning
    r".*Pydantic serializer warnings.*",  # MLflow's model signature code
)
# alembic: MLflow's SQLite schema migrations, one line per revision
_NOISY_LOGGERS = ("alembic", "httpx", "urllib3", "filelock", "matplotlib", "PIL")


def setup_logging() -> None:
    """Configure root logging once per process; called by entrypoints, never at import time."""
    level = os.environ.get("PIPELINE_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in _NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    # Tokenizers' fork warning is irrelevant: DataLoader workers are forked before tokenizing.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def progress_enabled() -> bool:
    """Progress bars only on an interactive terminal, so CI and DVC logs stay readable."""
    return sys.stderr.isatty() and os.environ.get("CI") is None
