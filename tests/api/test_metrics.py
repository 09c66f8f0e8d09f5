"""``GET /metrics``: Prometheus text format, read back with prometheus_client's own parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Server, running_server
from tests.api.test_backups_contract import assert_error


def scrape(server: Server, headers: dict[str, str] | None) -> dict[str, list[Any]]:
    response = server.client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: list(family.samples)
            for family in text_string_to_metric_families(response.text)}


def value(samples: list[Any], name: str, **labels: str) -> float | None:
    for sample in samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    return None


def test_metrics_cover_backups_jobs_storage_and_http(server: Server) -> None:
    created = server.backup_and_wait({"name": "metrics backup", "type": "full",
                                      "source_id": server.sources["sqlite"]})
    server.client.get(f"/api/v1/backups/{created['backup_id']}",
                      headers=server.headers("viewer"))
    metrics = scrape(server, {"Authorization": f"Bearer {server.keys['viewer']}"})

    completed = value(metrics["strongbox_backups"], "strongbox_backups", tenant="default",
                      status="completed")
    assert completed is not None and completed >= 1
    last = value(metrics["strongbox_last_successful_backup_timestamp_seconds"],
                 "strongbox_last_successful_backup_timestamp_seconds",
                 source_id=server.sources["sqlite"])
    assert last is not None and last > 1_600_000_000
    count = value(metrics["strongbox_job_duration_seconds"],
                  "strongbox_job_duration_seconds_count", kind="backup")
    assert count is not None and count >= 1
    inf = value(metrics["strongbox_job_duration_seconds"],
                "strongbox_job_duration_seconds_bucket", kind="backup", le="+Inf")
    assert inf == count
    assert "strongbox_jobs_active" in metrics
    size = value(metrics["strongbox_repository_size_bytes"], "strongbox_repository_size_bytes")
    assert size is not None and size > 0
    # Requests are counted by route template (not by path: ids would explode the labels).
    requests = value(metrics["strongbox_http_requests"], "strongbox_http_requests_total",
                     method="GET", route="/api/v1/backups/{backup_id}", status="200")
    assert requests is not None and requests >= 1
    assert value(metrics["strongbox_http_request_duration_seconds"],
                 "strongbox_http_request_duration_seconds_count", method="GET",
                 route="/api/v1/backups/{backup_id}") is not None


def test_metrics_need_a_key_and_show_only_the_keys_tenant(server: Server) -> None:
    assert_error(server.client.get("/metrics"), 401, "UNAUTHORIZED")
    assert_error(server.client.get("/metrics", headers={"Authorization": "Bearer sbk_wrong"}),
                 401, "UNAUTHORIZED")
    server.backup_and_wait({"name": "metrics tenant", "type": "full",
                            "source_id": server.sources["sqlite"]})
    other = scrape(server, server.other())
    assert all(s.labels.get("tenant") != "default" for s in other["strongbox_backups"])
    # Not part of REST API v1: left out of the OpenAPI schema (docs/monitoring.md).
    assert "/metrics" not in server.app.openapi()["paths"]


def test_public_metrics_need_no_key(tmp_path: Path) -> None:
    with running_server(tmp_path, metrics_public=True) as public:
        public.backup_and_wait({"name": "public metrics", "type": "full"})
        metrics = scrape(public, None)
        tenants = {s.labels["tenant"] for s in metrics["strongbox_backups"]}
        assert "default" in tenants
