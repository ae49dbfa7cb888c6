"""Server settings: a dataclass filled from CLI flags, then `SERVING_*` env vars, then defaults."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

ENV_PREFIX = "SERVING_"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told; see docs/serving.md for what each knob does."""

    host: str = "127.0.0.1"  # loopback only by default: exposing the API is an explicit choice
    port: int = 8000
    models_dir: Path = Path("models/export")
    max_body_bytes: int = 1_048_576  # 1 MiB: a full batch of records with long texts fits
    max_records: int = 256  # records per request
    max_string_length: int = 1000  # for string fields whose contract entry sets no max_length
    request_timeout_s: float = 5.0  # past this a queued or running request gets 504
    max_queue_records: int = 2048  # records waiting per model; beyond it 503 + Retry-After
    max_batch_size: int = 32  # rows per ONNX Runtime call (dynamic batching)
    max_wait_ms: float = 5.0  # text model: how long the batcher waits to fill a batch
    tabular_max_wait_ms: float = (
        0.0  # tabular: batch only what is already queued (no added latency)
    )
    intra_op_threads: int = 0  # ONNX Runtime threads per text session; 0 = all cores
    text_int8: bool = False  # serve the contract's int8 text model (export's `quantized` block)
    retry_after_s: int = 1
    log_level: str = "info"
    access_log: bool = False  # one log line per request costs ~10% of throughput

    def __post_init__(self) -> None:
        positive = (
            "port",
            "max_body_bytes",
            "max_records",
            "max_string_length",
            "max_queue_records",
            "max_batch_size",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"setting {name} must be > 0, got {getattr(self, name)}")
        if self.request_timeout_s <= 0 or self.max_wait_ms < 0 or self.tabular_max_wait_ms < 0:
            raise ValueError("request_timeout_s must be > 0 and max_wait_ms values >= 0")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {LOG_LEVELS}, got {self.log_level!r}")
        cores = os.cpu_count() or 1
        if not 0 <= self.intra_op_threads <= cores:
            # One server process: ORT threads × workers must stay within the cores.
            raise ValueError(
                f"intra_op_threads must be within 0..{cores} (the cores), "
                f"got {self.intra_op_threads}"
            )

    @property
    def ort_threads(self) -> int:
        """Intra-op threads for the text session (the tabular sessions use one thread)."""
        return self.intra_op_threads or (os.cpu_count() or 1)


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean (true/false), got {text!r}")


def _convert(kind: type, text: str) -> object:
    if kind is bool:
        return _parse_bool(text)
    return kind(text)


_KINDS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool, "Path": Path}


def parse_settings(argv: Sequence[str], env: Mapping[str, str]) -> Settings:
    """Build Settings: `--max-records 64` beats `SERVING_MAX_RECORDS=64` beats the default."""
    parser = argparse.ArgumentParser(
        prog="python -m serving", description="Serve the exported ONNX models over HTTP."
    )
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        aliases = ["--models"] if f.name == "models_dir" else []
        env_name = ENV_PREFIX + f.name.upper()
        # Booleans: `--access-log` alone means true; `--access-log false` also works.
        switch = {"nargs": "?", "const": "true"} if f.type == "bool" else {}
        parser.add_argument(
            flag,
            *aliases,
            dest=f.name,
            default=None,
            metavar=f.name.upper(),
            help=f"default {f.default!s}; env {env_name}",
            **switch,  # type: ignore[arg-type]
        )
    args = vars(parser.parse_args(list(argv)))
    values: dict[str, object] = {}
    for f in fields(Settings):
        name, kind = f.name, _KINDS[str(f.type)]
        text = args.get(name)
        if text is None:
            text = env.get(ENV_PREFIX + name.upper())
        if text is None:
            continue
        try:
            values[name] = _convert(kind, text)
        except ValueError as exc:
            parser.error(f"{name}: {exc}")
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValueError as exc:
        parser.error(str(exc))
