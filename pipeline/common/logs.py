"""Logging set-up for stage entrypoints, with deliberate filters for known third-party noise."""

from __future__ import annotations

import logging
import os
import sys
import warnings

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Each entry silences one known, harmless message; anything new still shows.
_NOISY_WARNINGS: list[tuple[str, str]] = [
    # Lightning suggests more DataLoader workers; the count comes from config on purpose.
    (r".*does not have many workers.*", "lightning"),
    # Lightning's hint about tensor-core precision on GPUs without bf16 set by the user.
    (r".*You are using a CUDA device .* that has Tensor Cores.*", "lightning"),
    # MLflow warns when the git binary can't describe a temporary copy of the repo.
    (r".*Failed to import Git.*", "mlflow"),
    # Lightning 2.6 on torch 2.13: a torch-internal pytree deprecation, on every fit and export.
    (r".*isinstance\(treespec, LeafSpec\).*", "torch"),
    # Pydantic serializer chatter emitted by MLflow's model signature code.
    (r".*Pydantic serializer warnings.*", "pydantic"),
]
_NOISY_LOGGERS = {
    "alembic": logging.WARNING,  # MLflow's SQLite schema migrations, one line per revision
    "httpx": logging.WARNING,
    "urllib3": logging.WARNING,
    "filelock": logging.WARNING,
    "matplotlib": logging.WARNING,
    "PIL": logging.WARNING,
}


def setup_logging(level: str | None = None) -> None:
    """Configure root logging once per process; called by entrypoints, never at import time."""
    level_name = (level or os.environ.get("PIPELINE_LOG_LEVEL", "INFO")).upper()
    logging.basicConfig(level=level_name, format=FORMAT, stream=sys.stderr, force=True)
    for name, lvl in _NOISY_LOGGERS.items():
        logging.getLogger(name).setLevel(lvl)
    for pattern, _origin in _NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    # Tokenizers' fork warning is irrelevant: DataLoader workers are forked before tokenizing.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def progress_enabled() -> bool:
    """Progress bars only on an interactive terminal, so CI and DVC logs stay readable."""
    return sys.stderr.isatty() and os.environ.get("CI") is None
