"""Prometheus metrics with ``prometheus_client``.

Two kinds of numbers:

* HTTP traffic (:class:`HttpMetrics`): counted as requests are served, by the request
  middleware; they live in the process (a restart starts them at zero, as Prometheus
  expects of counters).
* The backup system (:class:`CatalogCollector`): read from the catalog at scrape time, so
  they are right after a restart and agree with the API. Job durations are a histogram
  built from the finished jobs the catalog holds.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from strongbox.services.status import MetricsData, StatusService

# Seconds: a small SQLite backup takes well under a second, a large tree hours.
JOB_BUCKETS = (0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """Requests by route template and status code, and their latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("strongbox_http_requests", "HTTP requests served",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("strongbox_http_request_duration_seconds",
                                 "Time to serve an HTTP request", ["method", "route"],
                                 buckets=HTTP_BUCKETS, registry=self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


def job_histogram(durations: list[tuple[str, float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily("strongbox_job_duration_seconds",
                                   "Run time of finished jobs (start to end), by kind",
                                   labels=["kind"])
    by_kind: dict[str, list[float]] = {}
    for kind, seconds in durations:
        by_kind.setdefault(kind, []).append(max(0.0, seconds))
    for kind, values in sorted(by_kind.items()):
        buckets = [(str(bound), float(sum(1 for v in values if v <= bound)))
                   for bound in JOB_BUCKETS]
        buckets.append(("+Inf", float(len(values))))
        family.add_metric([kind], buckets, sum_value=sum(values))
    return family


class CatalogCollector(Collector):
    """The backup system's state for one tenant (or all, ``tenant=None``)."""

    def __init__(self, status: StatusService, tenant: str | None) -> None:
        self.status = status
        self.tenant = tenant

    def collect(self) -> Iterator[Metric]:
        data: MetricsData = self.status.metrics(self.tenant)
        backups = GaugeMetricFamily("strongbox_backups", "Backups in the catalog by status "
                                    "(deleted ones left out)", labels=["tenant", "status"])
        for (tenant, status), count in sorted(data.backups_by_status.items()):
            backups.add_metric([tenant, status], count)
        yield backups
        last = GaugeMetricFamily("strongbox_last_successful_backup_timestamp_seconds",
                                 "When the newest completed backup of a source finished "
                                 "(Unix time)", labels=["tenant", "source_id", "source"])
        for (tenant, source_id, name), moment in sorted(data.last_success.items()):
            last.add_metric([tenant, source_id, name], moment)
        yield last
        yield job_histogram(data.job_durations)
        active = GaugeMetricFamily("strongbox_jobs_active", "Jobs queued or running",
                                   labels=["kind", "status"])
        for (kind, status), count in sorted(data.active_jobs.items()):
            active.add_metric([kind, status], count)
        yield active
        yield GaugeMetricFamily("strongbox_repository_size_bytes",
                                "Bytes the repository occupies on its storage (all tenants)",
                                value=data.repository_used_bytes)
        if data.repository_free_bytes is not None:
            yield GaugeMetricFamily("strongbox_repository_free_bytes",
                                    "Free bytes on the repository's storage",
                                    value=data.repository_free_bytes)


def exposition(http: HttpMetrics, status: StatusService, tenant: str | None) -> bytes:
    """The text exposition format of every metric, for one scrape."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(CatalogCollector(status, tenant))
    return generate_latest(http.registry) + generate_latest(scrape)
