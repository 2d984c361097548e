"""Prometheus metrics of the prediction server, in one registry per application.

With several uvicorn workers each process counts on its own. ``serve`` then sets
``PROMETHEUS_MULTIPROC_DIR`` before any worker starts, prometheus_client keeps the values in
files there, and ``/metrics`` adds up every worker's files, so a scrape covers the whole server
whichever worker handles it.
"""

from __future__ import annotations

import os

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics,
                               generate_latest, multiprocess)
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401 (re-exported for the app)

from k8s_analysis.serving.settings import MULTIPROCESS_ENV

# Single-text predictions take well under a millisecond; 1,000 texts take about 50 ms.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROCESS_ENV))


class ServerMetrics:
    """The server's counters, histogram and gauges."""

    def __init__(self) -> None:
        # The *_created series only repeat the start time beside every counter.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter("k8s_analysis_http_requests", "HTTP requests answered, by route and status.",
                                ["route", "status"], registry=registry)
        self.errors = Counter("k8s_analysis_http_request_errors",
                              "HTTP requests answered with a 4xx or 5xx status, by route and status.",
                              ["route", "status"], registry=registry)
        self.latency = Histogram("k8s_analysis_http_request_duration_seconds",
                                 "Time from reading a request to its response, by route.", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.predictions = Counter("k8s_analysis_predictions", "Texts scored.", registry=registry)
        self.reloads = Counter("k8s_analysis_model_reloads", "Model loads, the first one included, by outcome (success or failure).",
                               ["outcome"], registry=registry)
        # livemax: in multiprocess mode a version counts while any live worker serves it.
        self.model_info = Gauge("k8s_analysis_model_info", "1 for the model version being served, else 0.",
                                ["name", "version"], registry=registry, multiprocess_mode="livemax")
        self.ready = Gauge("k8s_analysis_model_ready", "1 once a model is loaded.", registry=registry,
                           multiprocess_mode="livemin")
        self.ready.set(0)

    def observe(self, route: str, status: int, seconds: float | None) -> None:
        """Count one response; ``seconds`` is None for requests no handler timed (routing errors)."""
        self.requests.labels(route, str(status)).inc()
        if status >= 400:
            self.errors.labels(route, str(status)).inc()
        if seconds is not None:
            self.latency.labels(route).observe(seconds)

    def model_loaded(self, name: str, version: str, previous: str | None) -> None:
        if previous is not None and previous != version:
            self.model_info.labels(name, previous).set(0)
        self.model_info.labels(name, version).set(1)
        self.ready.set(1)
        self.reloads.labels("success").inc()

    def exposition(self) -> bytes:
        """Return the Prometheus text format of every metric (of every worker in multiprocess mode)."""
        if multiprocess_mode():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def mark_worker_stopped() -> None:
    """Drop this worker's live gauges from the shared files when it stops."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid())
