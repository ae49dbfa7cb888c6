"""Errors meant for people: one line that names the input, what was expected and the fix."""

from __future__ import annotations


class PipelineError(Exception):
    """A failure caused by input or configuration, reported as one line without a traceback."""

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None) -> None:
        message = f"{where}: {message}" if where else message
        super().__init__(f"{message} — fix: {fix}" if fix else message)
