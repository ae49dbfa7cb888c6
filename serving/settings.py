"""Server settings: `--flag` beats `SERVING_<NAME>` beats the default (pydantic-settings).

python -m serving --help        # every setting, its flag, default and meaning
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, CliApp, SettingsConfigDict


class Settings(BaseSettings):
    """Serve the exported ONNX models over HTTP."""

    model_config = SettingsConfigDict(
        env_prefix="SERVING_",
        cli_prog_name="python -m serving",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_shortcuts={"models-dir": "models"},
        use_attribute_docstrings=True,
        frozen=True,
    )

    host: str = "127.0.0.1"
    """Address to bind; loopback only by default: exposing the API is an explicit choice."""
    port: int = Field(8000, gt=0, lt=65536)
    models_dir: Path = Path("models/export")
    """The export directory: contract.json and the files it names."""
    api_key: SecretStr | None = None
    """Bearer token required by /v1/predict, /v2/models/* and /metadata (off when unset)."""
    max_body_bytes: int = Field(1_048_576, gt=0)
    """Largest request body."""
    max_records: int = Field(256, gt=0)
    """Records per /v1/predict request (rows per v2 request)."""
    max_string_length: int = Field(1000, gt=0)
    """Characters of a string field whose contract entry sets no max_length."""
    request_timeout_s: float = Field(5.0, gt=0)
    """A request not answered by then gets 504; its rows not yet scored are dropped."""
    max_queue_records: int = Field(2048, gt=0)
    """Rows waiting per model; beyond it 503 with Retry-After."""
    max_batch_size: int = Field(256, gt=0)
    """Rows per ONNX Runtime call of a tabular model; larger requests are cut into batches."""
    max_text_batch_size: int = Field(32, gt=0)
    """Texts per call of a text model (its calls cost per token, so batches stay small)."""
    max_wait_ms: float = Field(5.0, ge=0)
    """Text models: how long a batch waits to fill (tabular batches do not wait for more)."""
    intra_op_threads: int = Field(0, ge=0, le=os.cpu_count() or 1)
    """ONNX Runtime threads of the text model's session, at most the cores; 0 = all cores."""
    retry_after_s: int = Field(1, gt=0)
    """Retry-After of a 503."""
    max_connections: int = Field(1000, gt=0)
    """Open connections; beyond it new ones get 503 and are closed."""
    receive_timeout_s: float = Field(10.0, gt=0)
    """A request's head and body must arrive within this time (slow clients are dropped)."""
    keep_alive_s: int = Field(5, gt=0)
    """Idle keep-alive connections (and connections that never send a request) are closed."""
    max_header_bytes: int = Field(16_384, gt=0)
    """Request line plus all headers; beyond it 431."""
    shutdown_grace_s: float = Field(10.0, gt=0)
    """On SIGTERM, requests in flight get this long to finish before the exit."""
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"
    access_log: bool = False
    """One log line per request (costs about a tenth of the throughput)."""

    @property
    def text_threads(self) -> int:
        return self.intra_op_threads or (os.cpu_count() or 1)

    @property
    def loopback(self) -> bool:
        """Whether the bind address is reachable from this machine only."""
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


def parse_settings(argv: Sequence[str]) -> Settings:
    """Settings from flags and the environment; a bad value exits with status 2 and one line."""
    try:
        return CliApp.run(Settings, cli_args=list(argv))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        print(f"python -m serving: error: {where}: {first['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
