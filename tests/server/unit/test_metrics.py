from __future__ import annotations

import os

from prometheus_client.parser import text_string_to_metric_families

from firecrest_server.metrics import Metrics, exit_class


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_exit_classes() -> None:
    assert [exit_class(s) for s in (0, 1, 2, 124, None)] == [
        "ok", "failed", "failed", "timeout", "error",
    ]  # fmt: skip


def test_requests_are_counted_by_route_template() -> None:
    metrics = Metrics()
    metrics.observe_request("/status/{system_name}/userinfo", "GET", 200, 0.01)
    metrics.observe_request("/status/{system_name}/userinfo", "GET", 200, 0.02)
    values = samples(metrics)
    labels = (("method", "GET"), ("route", "/status/{system_name}/userinfo"), ("status", "200"))
    assert values[("firecrest_http_requests_total", labels)] == 2
    assert values[("firecrest_http_request_duration_seconds_count", labels)] == 2


def test_commands_are_counted_as_the_runner_reports_them() -> None:
    metrics = Metrics()
    for argv, status in ((["id"], 0), (["/usr/bin/tar", "-x"], 2), (["true"], None)):
        metrics.observe_command("c", argv, status, 0.003)
    metrics.observe_command("c", [], 0, 0.001)  # nothing to name it by: not counted
    values = samples(metrics)
    key = "firecrest_remote_commands_total"
    assert values[(key, (("program", "id"), ("result", "ok"), ("system", "c")))] == 1
    assert values[(key, (("program", "tar"), ("result", "failed"), ("system", "c")))] == 1
    assert values[(key, (("program", "true"), ("result", "error"), ("system", "c")))] == 1
    assert sum(v for (name, _), v in values.items() if name == key) == 3
    count = "firecrest_remote_command_duration_seconds_count"
    assert values[(count, (("program", "id"), ("system", "c")))] == 1


def test_pool_and_health_gauges_are_read_at_scrape_time() -> None:
    metrics = Metrics()
    stats = {"c": {"users": 1, "connections": 2, "channels_busy": 3}}
    metrics.add_pool_stats(lambda: stats)
    metrics.add_health(lambda: [("c", "ssh", "", True), ("c", "filesystem", "/home", None)])
    values = samples(metrics)
    assert values[("firecrest_ssh_connections", (("system", "c"),))] == 2
    assert values[("firecrest_ssh_channels_busy", (("system", "c"),))] == 3
    healthy = "firecrest_service_healthy"
    assert values[(healthy, (("path", ""), ("service", "ssh"), ("system", "c")))] == 1
    assert (healthy, (("path", "/home"), ("service", "filesystem"), ("system", "c"))) not in values
    stats["c"]["connections"] = 0
    assert samples(metrics)[("firecrest_ssh_connections", (("system", "c"),))] == 0
    assert values[("firecrest_worker", (("pid", str(os.getpid())),))] == 1


def test_each_app_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.rate_limited.labels("rate").inc()
    assert ("firecrest_rate_limited_requests_total", (("reason", "rate"),)) not in samples(second)
