"""Prometheus metrics: plain counters on the hot path, turned into metric families at scrape time.

prometheus_client's own Counter/Histogram take a lock per update; with ~8 updates per request that
was a tenth of the request cost. Every update here happens on the event loop thread, so plain
integers suffice, and a custom collector exposes them in the standard format.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

# Latency buckets in seconds: tabular requests take ~1 ms, text batches tens of ms.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)


class Histogram:
    """Bucket counts and a sum; `observe` is a bisect and two additions."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count one value (bucket upper bounds are inclusive, as in Prometheus)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs for the exposition format."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


def _latency() -> Histogram:
    return Histogram(LATENCY_BUCKETS)


def _batches() -> Histogram:
    return Histogram(BATCH_BUCKETS)


class Telemetry:
    """The server's counters, histograms and gauges, and their Prometheus exposition."""

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, int], int] = defaultdict(int)
        self.latency: defaultdict[tuple[str, int], Histogram] = defaultdict(_latency)
        self.records: defaultdict[str, int] = defaultdict(int)
        self.batch_size: defaultdict[str, Histogram] = defaultdict(_batches)
        self.queue_time: defaultdict[str, Histogram] = defaultdict(_latency)
        self.in_flight = 0
        self.ready = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def observe(self, model: str, status: int, seconds: float) -> None:
        """Count one predict request and its latency."""
        self.requests[(model, status)] += 1
        self.latency[(model, status)].observe(seconds)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        """Metric families for the registry (called at scrape time only)."""
        requests = CounterMetricFamily(
            "serving_requests",
            "Predict requests by model and HTTP status.",
            labels=["model", "status"],
        )
        latency = HistogramMetricFamily(
            "serving_request_duration_seconds",
            "Predict request latency by model and status.",
            labels=["model", "status"],
        )
        for (model, status), count in sorted(self.requests.items()):
            requests.add_metric([model, str(status)], count)
            hist = self.latency[(model, status)]
            latency.add_metric([model, str(status)], hist.buckets(), hist.total)
        records = CounterMetricFamily(
            "serving_records", "Records predicted, by model.", labels=["model"]
        )
        for model, count in sorted(self.records.items()):
            records.add_metric([model], count)
        yield from (requests, latency, records)
        for name, doc, table in (
            ("serving_batch_size_records", "Records per ONNX Runtime call.", self.batch_size),
            ("serving_queue_seconds", "Time a request waited for its batch.", self.queue_time),
        ):
            family = HistogramMetricFamily(name, doc + " By model.", labels=["model"])
            for model, hist in sorted(table.items()):
                family.add_metric([model], hist.buckets(), hist.total)
            yield family
        yield GaugeMetricFamily(
            "serving_requests_in_flight", "Predict requests being handled.", value=self.in_flight
        )
        yield GaugeMetricFamily(
            "serving_ready",
            "1 once every model is loaded, verified and warmed up.",
            value=self.ready,
        )
