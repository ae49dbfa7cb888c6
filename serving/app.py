"""The FastAPI app: health, metadata, metrics, docs and `/v1/predict` (v2 protocol: serving.v2).

Models load, are verified and warmed up in the background; `/health/ready` turns 200 after that.
Each model has a `Batcher`; requests of every protocol go through it.
"""

import asyncio
import gc
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request, Response
from fastapi.params import Depends as DependsParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from serving import v2
from serving.batching import Batcher, Columns, Overloaded, Rejected
from serving.http import ApiError, ErrorBody, install_handlers, json_route
from serving.payloads import as_columns, predict_request, predict_response, record_model, render
from serving.runtime import ModelFileError
from serving.schemas import Contract
from serving.scoring import Outputs, Scorer, load_scorers
from serving.settings import Settings

log = logging.getLogger("serving")
HOT_PATHS = ("/v1/predict", "/v2/models/{name}/infer")
INLINE_MAX_RECORDS = 64  # tabular batches up to this size run on the event loop (~0.3 ms)
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in {
        401: "missing or wrong bearer token (when SERVING_API_KEY is set)",
        413: "body or batch too large",
        415: "not JSON",
        422: "a record does not match the schema, or a value cannot be scored",
        503: "loading, or the queue is full (Retry-After)",
        504: "no answer within the request timeout",
    }.items()
}

# Latency buckets in seconds: tabular requests take about a millisecond, text batches tens.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Serving:
    """What the app serves and counts: the contract, the loaded models, their batchers and the
    metrics (per request one counter and one histogram update, per batch its size)."""

    def __init__(self, settings: Settings, contract: Contract) -> None:
        self.settings = settings
        self.contract = contract
        self.scorers: dict[str, Scorer] = {}
        self.batchers: dict[str, Batcher] = {}
        self.ready = False
        self.in_flight = 0
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "serving_requests",
            "Predict requests by model and HTTP status.",
            ["model", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "serving_request_duration_seconds",
            "Latency of answered predict requests, by model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "serving_batch_size_records",
            "Rows per ONNX Runtime call, by model (its _sum counts the rows scored).",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_time = Histogram(
            "serving_queue_seconds",
            "Time a request waited for its first batch, by model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        Gauge(
            "serving_requests_in_flight",
            "Predict requests waiting for or in a batch.",
            registry=self.registry,
        ).set_function(lambda: self.in_flight)
        Gauge(
            "serving_ready",
            "1 once every model is loaded, verified and warmed up.",
            registry=self.registry,
        ).set_function(lambda: self.ready)
        self.answered: dict[str, tuple[Any, Any]] = {}  # model → its 200 counter, its latency
        self.retry_after = {"retry-after": str(settings.retry_after_s)}
        # One thread for model work: ONNX Runtime has its own threads, and batches that run
        # there are big enough that one hand-off per batch is cheap.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ort")

    async def load(self, on_fatal: Callable[[str], None]) -> None:
        """Load, verify and warm up every model off the event loop, then turn ready."""
        started = time.perf_counter()
        settings = self.settings
        try:
            self.scorers = await asyncio.get_running_loop().run_in_executor(
                self.executor,
                load_scorers,
                self.contract,
                settings.models_dir,
                1,
                settings.text_threads,
                settings.max_string_length,
            )
        except ModelFileError as exc:
            log.error("%s", exc)
            on_fatal(str(exc))
            return
        except Exception as exc:  # never stay up and unready because of an unexpected error
            log.exception("loading the models failed")
            on_fatal(f"loading the models failed: {exc!r}")
            return
        for name, scorer in self.scorers.items():
            text = scorer.is_text
            self.batchers[name] = batcher = Batcher(
                scorer,
                max_batch_size=settings.max_text_batch_size if text else settings.max_batch_size,
                max_wait_s=settings.max_wait_ms / 1000 if text else 0.0,
                max_queue_records=settings.max_queue_records,
                executor=self.executor,
                inline_max_records=0 if text else INLINE_MAX_RECORDS,
                on_batch=self.batch_size.labels(name).observe,
                on_queue_time=self.queue_time.labels(name).observe,
            )
            batcher.start()
            # `labels()` takes a lock and a lookup: once per model, not per request
            self.answered[name] = (self.requests.labels(name, "200"), self.latency.labels(name))
        # What is loaded now lives until exit: frozen, it costs full collections nothing; and
        # waiting requests keep many objects alive, so young collections run less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 10, 10)
        self.ready = True
        log.info(
            "ready: %s loaded, verified and warmed up in %.1f s (champion %s)",
            ", ".join(sorted(self.scorers)),
            time.perf_counter() - started,
            self.contract.champion,
        )

    async def stop(self) -> None:
        self.ready = False
        for batcher in self.batchers.values():
            await batcher.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def not_ready(self) -> ApiError:
        return ApiError(
            503, "not_ready", "models are loading; retry shortly", None, self.retry_after
        )

    async def score(self, model: str, columns: Columns, size: int, where: str) -> Outputs:
        """Outputs for `size` raw rows; every failure as an ApiError (`where`, formatted with the
        `row` and `field` of a rejected value, names it in the caller's terms)."""
        if not self.ready:
            raise self.not_ready()
        self.in_flight += 1
        try:
            return await self.batchers[model].submit(columns, size, self.settings.request_timeout_s)
        except Rejected as exc:
            field = where.format(row=exc.rejection.row, field=exc.rejection.field)
            error = ApiError(422, "invalid_value", exc.rejection.message, field)
        except Overloaded:
            error = ApiError(
                503, "overloaded", "the queue is full; retry shortly", None, self.retry_after
            )
        except TimeoutError:
            timeout = self.settings.request_timeout_s
            error = ApiError(504, "timeout", f"no answer within {timeout:g} s")
        except Exception:  # logged by the batcher
            error = ApiError(500, "internal_error", "see the server log")
        finally:
            self.in_flight -= 1
        error.model = model
        raise error

    def count(self, model: str, seconds: float) -> None:
        """Count one answered predict request and its latency."""
        counter, latency = self.answered[model]
        counter.inc()
        latency.observe(seconds)

    def count_error(self, request: Request, status: int, model: str | None) -> None:
        path = request.url.path
        if path == "/v1/predict" or (path.startswith("/v2/models/") and path.endswith("/infer")):
            self.requests.labels(model or "-", str(status)).inc()


def bearer_auth(settings: Settings) -> list[DependsParam]:
    """The dependency that checks `Authorization: Bearer <api_key>`; none when auth is off."""
    if settings.api_key is None:
        return []
    scheme = HTTPBearer(auto_error=False, description="SERVING_API_KEY")
    key = settings.api_key.get_secret_value().encode()
    message = "send Authorization: Bearer <SERVING_API_KEY>"

    async def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)],
    ) -> None:
        sent = credentials.credentials.encode() if credentials else b""
        if not hmac.compare_digest(sent, key):
            raise ApiError(
                401, "unauthorized", message, "authorization", {"www-authenticate": "Bearer"}
            )

    return [Depends(check)]


def public_metadata(contract: Contract) -> dict[str, Any]:
    """What anyone may know: no tracking URI, no paths, no git state beyond the commit.
    Allow-lists: a key added to the contract stays private until it is named here."""
    entry = {"kind", "version", "sha256", "outputs", "decision", "calibration", "metrics", "mlflow"}
    about = ("schema_version", "task", "target", "labels", "id", "input_schema", "champion")
    public = contract.model_dump(
        include={
            **dict.fromkeys((*about, "champion_metric", "promotion"), True),
            "models": {"__all__": entry},
            "lineage": {"git_commit", "params", "models", "data"},
        }
    )
    for dumped in public["models"].values():
        dumped["outputs"] = [key for key, value in dumped["outputs"].items() if value]
    lineage = public["lineage"]
    if lineage is not None:  # data files by name only, not by path
        lineage["data"] = {Path(path).name: md5 for path, md5 in lineage["data"].items()}
    return {**public, "timezone": contract.features.timezone}


def create_app(
    settings: Settings, contract: Contract, on_fatal: Callable[[str], None] | None = None
) -> FastAPI:
    """The app for one contract; `on_fatal` is told when the models cannot be loaded."""
    serving = Serving(settings, contract)
    record, keys = record_model(contract, settings.max_string_length)
    names = [field.name for field in contract.input_schema]
    PredictRequest = predict_request(contract, record, settings.max_records)
    metadata = orjson.dumps(public_metadata(contract))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = asyncio.create_task(serving.load(on_fatal or (lambda message: None)))
        try:
            yield
        finally:
            loader.cancel()
            await serving.stop()

    app = FastAPIOffline(
        title="Inference server",
        description=f"Serves the exported models of a {contract.task} task predicting "
        f"`{contract.target}` (champion: {contract.champion}).",
        version=contract.models[contract.champion].version,
        lifespan=lifespan,
        redoc_url=None,
    )
    install_handlers(app, serving.count_error)
    auth = bearer_auth(settings)
    router = app.router
    router.route_class = route_class = json_route(settings.max_body_bytes)

    @router.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @router.get("/health/ready", tags=["health"], responses={503: ERRORS[503]})
    async def ready() -> dict[str, str]:
        if not serving.ready:
            raise serving.not_ready()
        return {"status": "ready"}

    @router.get("/metadata", dependencies=auth, tags=["metadata"])
    async def get_metadata() -> Response:
        """Models, versions, input schema, metrics, decisions and lineage ids."""
        return Response(metadata, media_type="application/json")

    @router.get("/metrics", tags=["metadata"], response_class=Response)
    async def get_metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(serving.registry), media_type=CONTENT_TYPE_LATEST)

    @router.post(
        "/v1/predict",
        dependencies=auth,
        response_model=predict_response(contract),
        responses=ERRORS,
        tags=["predict"],
    )
    async def predict(body: PredictRequest) -> Response:  # type: ignore[valid-type]
        """Score raw records with the champion or the named model."""
        request: Any = body
        name = request.model or contract.champion
        records = request.records
        started = time.perf_counter()
        columns = as_columns(records, keys, names)
        outputs = await serving.score(name, columns, len(records), "records[{row}].{field}")
        scorer = serving.scorers[name]
        ids = [r.record_id for r in records] if contract.id else None
        answer = Response(render(scorer, outputs, ids), media_type="application/json")
        serving.count(name, time.perf_counter() - started)
        return answer

    app.include_router(v2.router(serving, auth, route_class))
    # Routes are matched in order: the predict routes first save the others' matching.
    router.routes.sort(key=lambda route: getattr(route, "path", "") not in HOT_PATHS)
    return app
