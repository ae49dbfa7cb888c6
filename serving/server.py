"""`python -m serving`: settings → contract → one uvicorn process (uvloop, httptools + limits).

uvicorn's `Server` is run directly with one worker: its multi-worker supervisor would start
processes through multiprocessing (which pickles), and ONNX Runtime threads × workers must stay
within the cores anyway. Scale out by running more processes behind a load balancer.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

import uvicorn
from fastapi import FastAPI

from serving.app import create_app
from serving.protocol import protocol_class
from serving.schemas import FileError, load_contract
from serving.settings import Settings, parse_settings

log = logging.getLogger("serving")


def build_server(settings: Settings, app: FastAPI) -> uvicorn.Server:
    """A uvicorn server for the app; SIGTERM drains requests in flight before the exit."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=protocol_class(settings),
        lifespan="on",
        access_log=settings.access_log,
        log_level=settings.log_level,
        server_header=False,
        timeout_keep_alive=settings.keep_alive_s,
        timeout_graceful_shutdown=settings.shutdown_grace_s,  # type: ignore[arg-type]
    )
    return uvicorn.Server(config)


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel("DEBUG" if level == "trace" else level.upper())
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean drain, 1 when the models cannot be served."""
    settings = parse_settings(sys.argv[1:] if argv is None else argv)
    _setup_logging(settings.log_level)
    if settings.api_key is None and not settings.loopback:
        log.warning(
            "listening on %s without SERVING_API_KEY: anyone who reaches this address "
            "can call predict and metadata; set SERVING_API_KEY to require a bearer "
            "token",
            settings.host,
        )
    try:
        contract = load_contract(settings.models_dir)
    except FileError as exc:
        print(f"serving: {exc}", file=sys.stderr)
        return 1
    failures: list[str] = []
    server: uvicorn.Server | None = None

    def fatal(message: str) -> None:
        failures.append(message)
        if server is not None:
            server.should_exit = True

    server = build_server(settings, create_app(settings, contract, on_fatal=fatal))
    # uvicorn restores the previous handlers after its graceful shutdown and re-raises the signal
    # there; no-op handlers turn that into a normal return, so a drained shutdown exits 0.
    previous = {sig: signal.signal(sig, _drained) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # A model that failed to load was logged by the app as one line; the exit code says it too.
    return 1 if failures or not server.started else 0


def _drained(signum: int, frame: FrameType | None) -> None:
    log.info("stopped after signal %d", signum)
