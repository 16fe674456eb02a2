"""Prometheus metrics, in a registry of the app's own (created in the lifespan, not global).

Each worker process counts what it served and reports it at its own ``/metrics``: with several
workers behind one port, a scrape sees one worker (see docs/deployment.md).

Remote commands are counted through the command runner's observer hook
(``cluster.commands.CommandObserver``), which the runner calls with the same figures it writes
to the audit log line, so the counts cannot drift from what is audited.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from .cluster.commands import TIMEOUT_EXIT

# Seconds. API requests span sub-millisecond (status) to minutes (large downloads).
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_COMMAND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def exit_class(exit_status: int | None) -> str:
    """A small, fixed set of label values for how a remote command ended."""
    if exit_status is None:
        return "error"  # no exit status: the channel failed, output was too large, local timeout
    if exit_status == 0:
        return "ok"
    if exit_status == TIMEOUT_EXIT:
        return "timeout"  # coreutils `timeout` ended it
    return "failed"


class _PoolCollector(Collector):
    """SSH pool gauges, read from the pools at scrape time (no bookkeeping on the request path)."""

    def __init__(self, pool_stats: Callable[[], Mapping[str, Mapping[str, int]]]) -> None:
        self._pool_stats = pool_stats

    def collect(self) -> Iterable[Metric]:
        connections = GaugeMetricFamily(
            "firecrest_ssh_connections", "Open SSH connections", labels=["system"]
        )
        busy = GaugeMetricFamily(
            "firecrest_ssh_channels_busy", "SSH channel slots in use", labels=["system"]
        )
        users = GaugeMetricFamily(
            "firecrest_ssh_users", "Users with SSH connections in the pool", labels=["system"]
        )
        evicted = CounterMetricFamily(
            "firecrest_ssh_evicted",
            "Idle SSH connections closed to stay under ssh.max_connections",
            labels=["system"],
        )
        # Which worker answered this scrape: with several workers behind one port, this tells
        # the scrapes apart (and lets a check visit each worker's pool).
        worker = GaugeMetricFamily(
            "firecrest_worker", "The worker process that answered (its pid)", labels=["pid"]
        )
        worker.add_metric([str(os.getpid())], 1.0)
        yield worker
        for system, stats in self._pool_stats().items():
            connections.add_metric([system], stats.get("connections", 0))
            busy.add_metric([system], stats.get("channels_busy", 0))
            users.add_metric([system], stats.get("users", 0))
            evicted.add_metric([system], stats.get("evicted", 0))
        yield connections
        yield busy
        yield users
        yield evicted


class _HealthCollector(Collector):
    """1 healthy, 0 unhealthy, per probed service; services not probed yet are left out."""

    def __init__(self, health: Callable[[], Iterable[tuple[str, str, str, bool | None]]]) -> None:
        self._health = health

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "firecrest_service_healthy",
            "Result of the last health probe of a system's service",
            labels=["system", "service", "path"],
        )
        for system, service, path, healthy in self._health():
            if healthy is not None:
                gauge.add_metric([system, service, path], 1.0 if healthy else 0.0)
        yield gauge


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "firecrest_http_requests",
            "HTTP requests served",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "firecrest_http_request_duration_seconds",
            "Time to serve an HTTP request, until the last byte of the response",
            ["route", "method", "status"],
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.commands = Counter(
            "firecrest_remote_commands",
            "Programs run on a cluster, by program name and how they ended",
            ["system", "program", "result"],
            registry=self.registry,
        )
        self.command_seconds = Histogram(
            "firecrest_remote_command_duration_seconds",
            "Time from opening the channel to the exit of a remote program",
            ["system", "program"],
            buckets=_COMMAND_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "firecrest_rate_limited_requests",
            "Requests refused with 429, by which limit refused them",
            ["reason"],
            registry=self.registry,
        )
        self.state_errors = Counter(
            "firecrest_shared_state_errors",
            "Redis commands that failed (state.redis_url), by operation; the request went on "
            "with per-worker limits or a fallback serial",
            ["operation"],
            registry=self.registry,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        labels = (route, method, str(status))
        self.requests.labels(*labels).inc()
        self.request_seconds.labels(*labels).observe(seconds)

    def observe_command(
        self, system: str, argv: Sequence[str], exit_status: int | None, seconds: float
    ) -> None:
        """Count one finished remote command (a ``cluster.commands.CommandObserver``)."""
        if not argv:
            return
        # argv[0] is always chosen by the server's operations, never by the caller, so the
        # label set stays small; the basename keeps `/usr/bin/tar` and `tar` together.
        program = posixpath.basename(str(argv[0]))
        self.commands.labels(system, program, exit_class(exit_status)).inc()
        self.command_seconds.labels(system, program).observe(seconds)

    def add_pool_stats(self, pool_stats: Callable[[], Mapping[str, Mapping[str, int]]]) -> None:
        self.registry.register(_PoolCollector(pool_stats))

    def add_health(self, health: Callable[[], Iterable[tuple[str, str, str, bool | None]]]) -> None:
        self.registry.register(_HealthCollector(health))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
