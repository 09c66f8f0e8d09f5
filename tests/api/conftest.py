"""A real server per test module: its own data directory, catalog, repository and keys.

Requests go through FastAPI's TestClient, which runs the whole ASGI app (middleware,
dependencies, exception handlers, lifespan) in-process; the jobs run on the server's
real thread pool against a real encrypted repository.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from strongbox.api.app import create_app
from strongbox.cli.main import app as cli_app
from strongbox.services.container import Services
from strongbox.settings import Settings

os.environ.setdefault("STRONGBOX_SCRYPT_N", "1024")
warnings.filterwarnings("ignore", message=".*httpx2.*")

TENANT = "default"
OTHER_TENANT = "other"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", "ignore:.*httpx2.*")


@dataclass
class Server:
    app: FastAPI
    client: TestClient
    data_dir: Path
    keys: dict[str, str] = field(default_factory=dict)  # role → token (tenant "default")
    other_admin: str = ""  # an admin key of tenant "other"
    sources: dict[str, str] = field(default_factory=dict)  # "sqlite"/"files" → source id

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}

    def other(self) -> dict[str, str]:
        return {"X-API-Key": self.other_admin}

    def create_backup(self, body: dict[str, Any] | None = None,
                      role: str = "operator") -> dict[str, Any]:
        response = self.client.post("/api/v1/backups", headers=self.headers(role),
                                    json=body or {"name": "test backup", "type": "full"})
        assert response.status_code == 202, response.text
        return dict(response.json())

    def wait_for_job(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            response = self.client.get(f"/api/v1/backups/jobs/{job_id}",
                                       headers=self.headers("viewer"))
            assert response.status_code == 200, response.text
            status = response.json()
            if status["status"] in ("completed", "failed"):
                return dict(status)
            assert time.monotonic() < deadline, f"job {job_id} did not finish: {status}"
            time.sleep(0.05)

    def backup_and_wait(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        created = self.create_backup(body)
        status = self.wait_for_job(created["job_id"])
        assert status["status"] == "completed", status
        return created


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": data_dir, "passphrase": "api-test-secret",
                              "demo": True, "rate_limit_default": "10000/minute",
                              "rate_limit_create_backup": "10000/hour",
                              "job_progress_interval": 0.05,
                              # Real-time schedules would fire at whatever hour the suite
                              # runs; tests that want the scheduler turn it on.
                              "scheduler_enabled": False}
    values.update(overrides)
    return Settings(**values)


@contextmanager
def running_server(data_dir: Path, **overrides: Any) -> Iterator[Server]:
    """Start a server on ``data_dir`` with keys of every role for tenant "default" and
    an admin key for tenant "other"."""
    app = create_app(settings_for(data_dir, **overrides))
    with TestClient(app) as client:
        services: Services = app.state.services
        server = Server(app, client, data_dir)
        demo = app.state.start_report.demo
        if demo is not None:
            server.keys["admin"] = demo.token
            server.sources = {s.kind: s.id for s in demo.sources}
        for role in ("admin", "operator", "viewer"):
            if role not in server.keys:
                server.keys[role] = services.keys.create(TENANT, role, f"test {role}")[1]
        server.other_admin = services.keys.create(OTHER_TENANT, "admin", "other admin")[1]
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("server")) as started:
        yield started


# --- a real HTTP server on a loopback port (for the CLI and WebSocket clients) -------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(app: FastAPI, *, lifespan: str = "on") -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields its base URL.
    ``lifespan="off"`` serves an app whose services a TestClient already started."""
    port = free_port()
    web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                        lifespan=lifespan))  # type: ignore[arg-type]
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not web.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        web.should_exit = True
        thread.join(timeout=30)


@dataclass
class Live:
    """A server reachable over real HTTP: its URL, the demo admin key, the app."""

    url: str
    key: str
    app: FastAPI

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    def run(self, *args: str) -> Any:
        """Run ``strongbox *args`` against this server."""
        return CliRunner().invoke(cli_app, [*args, "--server", self.url, "--api-key", self.key])


@contextmanager
def live_server(data_dir: Path, **overrides: Any) -> Iterator[Live]:
    app = create_app(settings_for(data_dir, **overrides))
    with serving(app) as url:
        yield Live(url, app.state.start_report.demo.token, app)
