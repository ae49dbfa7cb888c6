"""The ETL entrypoint's allocator options: set before Polars loads, never over a user's own."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline.etl.allocator import POLARS_ALLOCATOR_ENV

KEY = next(iter(POLARS_ALLOCATOR_ENV))


def _child(code: str, **extra: str) -> str:
    """Run `code` in a fresh interpreter: this one has Polars loaded, which set the variable."""
    env = {k: v for k, v in os.environ.items() if k != KEY} | extra
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout.strip()


def test_set_before_polars_loads() -> None:
    out = _child(
        "import os; from pipeline.etl.allocator import keep_freed_memory as k; "
        f"print(k(), os.environ.get({KEY!r}))"
    )
    assert out == f"True {POLARS_ALLOCATOR_ENV[KEY]}"


def test_too_late_once_polars_is_loaded() -> None:
    out = _child(
        "import os, polars; from pipeline.etl.allocator import keep_freed_memory as k; "
        f"print(k(), os.environ.get({KEY!r}))"
    )
    assert out.startswith("False ") and POLARS_ALLOCATOR_ENV[KEY] not in out  # Polars' own


def test_a_users_own_setting_wins() -> None:
    out = _child(
        "import os; from pipeline.etl.allocator import keep_freed_memory as k; "
        f"print(k(), os.environ.get({KEY!r}))",
        **{KEY: "dirty_decay_ms:0"},
    )
    assert out == "True dirty_decay_ms:0"
