"""Prometheus metrics, on a registry of the daemon's own (two daemons in one test process
must not share counters). Names follow Prometheus conventions: ``batchwatch_`` prefix,
``_total`` for counters, ``_seconds`` for durations."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchwatch.health import Health
from batchwatch.logs import get_logger
from batchwatch.models import TokenUsage, Transition

log = get_logger("batchwatch.metrics")


class _JobsByStatus(Collector):
    """Tracked jobs per status, counted in the database at scrape time."""

    def __init__(self, count: Callable[[], dict[str, int]]) -> None:
        self._count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "batchwatch_jobs", "Tracked jobs by current status", labels=["status"]
        )
        try:
            counts = self._count()
        except Exception as exc:  # the database being down must not break the scrape
            log.warning("metrics_jobs_unavailable", error=type(exc).__name__)
            counts = {}
        for status, n in sorted(counts.items()):
            family.add_metric([status], n)
        yield family


class _EventState(Collector):
    """Read at scrape time: the age of the oldest job in each active status, and each
    endpoint's backlog of pending deliveries."""

    def __init__(
        self,
        oldest: Callable[[], dict[str, int]],
        backlog: Callable[[], dict[str, dict[str, int]]],
    ) -> None:
        self._oldest = oldest
        self._backlog = backlog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        age = GaugeMetricFamily(
            "batchwatch_oldest_active_job_age_seconds",
            "Age of the oldest tracked job in each active status",
            labels=["status"],
        )
        backlog = GaugeMetricFamily(
            "batchwatch_outbox_backlog",
            "Events waiting to be delivered, by endpoint",
            labels=["endpoint"],
        )
        try:
            now = time.time()
            for status, created in sorted(self._oldest().items()):
                age.add_metric([status], max(0.0, now - created))
            for endpoint, states in sorted(self._backlog().items()):
                backlog.add_metric([endpoint], states.get("pending", 0))
        except Exception as exc:  # the database being down must not break the scrape
            log.warning("metrics_events_unavailable", error=type(exc).__name__)
        yield age
        yield backlog


class _PollState(Collector):
    def __init__(self, health: Health) -> None:
        self._health = health

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self._health.snapshot(_now())
        last = GaugeMetricFamily(
            "batchwatch_last_successful_poll_timestamp_seconds",
            "Unix time of the last poll cycle that succeeded",
        )
        last.add_metric([], snap.last_success_at.timestamp() if snap.last_success_at else 0)
        yield last
        failures = GaugeMetricFamily(
            "batchwatch_poll_consecutive_failures",
            "Poll cycles failed in a row (0 when the last succeeded)",
        )
        failures.add_metric([], snap.consecutive_failures)
        yield failures


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


class Metrics:
    def __init__(
        self,
        health: Health,
        count_jobs: Callable[[], dict[str, int]],
        oldest: Callable[[], dict[str, int]] = dict,
        backlog: Callable[[], dict[str, dict[str, int]]] = dict,
    ) -> None:
        r = self.registry = CollectorRegistry()
        self.upstream_requests = Counter(
            "batchwatch_upstream_requests",
            "Requests to Mistral by operation and HTTP status ('error' when no response came)",
            ["operation", "code"],
            registry=r,
        )
        self.upstream_retries = Counter(
            "batchwatch_upstream_retries",
            "Requests to Mistral repeated after a 429, a 5xx or a connection error",
            ["reason"],
            registry=r,
        )
        self.transitions = Counter(
            "batchwatch_transitions_recorded",
            "Status transitions recorded",
            ["to_status", "source"],
            registry=r,
        )
        self.poll_cycles = Counter(
            "batchwatch_poll_cycles", "Poll cycles by result", ["result"], registry=r
        )
        self.poll_duration = Histogram(
            "batchwatch_poll_duration_seconds",
            "Duration of a poll cycle",
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.api_requests = Counter(
            "batchwatch_api_requests",
            "Local API requests by route and status",
            ["method", "route", "code"],
            registry=r,
        )
        self.api_duration = Histogram(
            "batchwatch_api_request_duration_seconds",
            "Local API request duration",
            ["route"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
        )
        self._count_the_work(r)
        r.register(_JobsByStatus(count_jobs))
        r.register(_EventState(oldest, backlog))
        r.register(_PollState(health))
        self._identify(r)

    def _identify(self, r: CollectorRegistry) -> None:
        """Which daemon this is: its version, and whether it leads its team."""
        self.info = Gauge(
            "batchwatch_info", "Version of the running daemon", ["version"], registry=r
        )
        self.leader = Gauge(
            "batchwatch_leader",
            "1 while this daemon polls: the team's leader, or a daemon alone on SQLite",
            registry=r,
        )
        self.leader.set(1)

    def _count_the_work(self, r: CollectorRegistry) -> None:
        """The counters of the work beside polling: results fetched, tokens, deliveries."""
        self.result_downloads = Counter(
            "batchwatch_result_downloads",
            "Attempts at a job's results by how they ended (ready, failed, unavailable)",
            ["result"],
            registry=r,
        )
        self.tokens = Counter(
            "batchwatch_tokens",
            "Tokens of the requests of jobs whose results were fetched, by model and kind",
            ["model", "kind"],
            registry=r,
        )
        self.deliveries = Counter(
            "batchwatch_deliveries",
            "Attempts at delivering events, by endpoint and result (delivered, failed, dead)",
            ["endpoint", "result"],
            registry=r,
        )

    # Hooks given to the parts that do the work ----------------------------------------

    def upstream(self, operation: str, status: int | None) -> None:
        self.upstream_requests.labels(operation, str(status) if status else "error").inc()

    def retried(self, reason: str) -> None:
        self.upstream_retries.labels(reason).inc()

    def recorded(self, transitions: Sequence[Transition]) -> None:
        for t in transitions:
            self.transitions.labels(t.to_status.value, t.source).inc()

    def cycle(self, ok: bool, seconds: float) -> None:
        self.poll_cycles.labels("ok" if ok else "failed").inc()
        self.poll_duration.observe(seconds)

    def result(self, result: str) -> None:
        self.result_downloads.labels(result).inc()

    def used(self, model: str | None, usage: TokenUsage) -> None:
        for kind, count in (
            ("prompt", usage.prompt_tokens),
            ("completion", usage.completion_tokens),
        ):
            self.tokens.labels(model or "", kind).inc(count)

    def delivered(self, endpoint: str, result: str) -> None:
        self.deliveries.labels(endpoint, result).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def install(self, app: FastAPI) -> None:
        """``GET /metrics`` (no token, like ``/healthz``) and per-route request counting."""

        @app.get(
            "/metrics",
            tags=["service"],
            include_in_schema=True,
            response_class=Response,
            summary="Prometheus metrics",
        )
        def metrics() -> Response:
            return Response(self.render(), media_type=CONTENT_TYPE_LATEST)

        app.add_middleware(_CountRequests, metrics=self)


class _CountRequests:
    """Counts and times every HTTP request by route template and status. Plain ASGI: the
    ``@app.middleware("http")`` kind runs each request through a task group and memory
    streams of its own, which cost about as much as a single-job read itself."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.requests = metrics.api_requests
        self.duration = metrics.api_duration

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before answering

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            self._observe(scope, status, started)
            raise
        self._observe(scope, status, started)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        # The route template, never the raw path: job ids would explode the label set.
        name = getattr(scope.get("route"), "path", "unmatched")
        self.requests.labels(scope["method"], name, str(status)).inc()
        self.duration.labels(name).observe(time.perf_counter() - started)
