"""Prometheus metrics, with prometheus-client's own instrumentation, in a registry per app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Latency buckets in seconds: tabular requests take about a millisecond, text batches tens.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The server's metrics. Per request: one counter and one histogram update (the gauges are
    read at scrape time); per batch: its size and the queue time of its requests."""

    def __init__(self, in_flight: Callable[[], float], ready: Callable[[], float]) -> None:
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
        ).set_function(in_flight)
        Gauge(
            "serving_ready",
            "1 once every model is loaded, verified and warmed up.",
            registry=self.registry,
        ).set_function(ready)
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def request(self, model: str, status: int, seconds: float | None = None) -> None:
        """Count one predict request, and its latency when it was answered."""
        children = self._children.get((model, status))
        if children is None:  # `labels()` takes a lock and a lookup: once per model and status
            children = self._children[(model, status)] = (
                self.requests.labels(model, str(status)),
                self.latency.labels(model),
            )
        children[0].inc()
        if seconds is not None:
            children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
