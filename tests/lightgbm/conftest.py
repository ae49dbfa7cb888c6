"""Processed-data fixtures and session-cached stage runs (see tests/common/processed.py)."""

from tests.common.processed import processed, trained  # noqa: F401
