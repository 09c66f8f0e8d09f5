"""A real ``strongbox serve`` process: its JSON logs carry request ids, and the
``strongbox snapshots`` and ``strongbox status`` commands work against it over HTTP."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from strongbox.cli.main import app


@dataclass
class LiveServer:
    url: str
    key: str
    log: Path
    data_dir: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("live")
    port = free_port()
    stdout, stderr = data_dir / "stdout.txt", data_dir / "stderr.txt"
    env = {**os.environ, "STRONGBOX_DATA_DIR": str(data_dir / "data"),
           "STRONGBOX_PASSPHRASE": "live-test", "STRONGBOX_SCRYPT_N": "1024",
           "STRONGBOX_DEMO": "1", "STRONGBOX_LOG_FORMAT": "json",
           "STRONGBOX_RATE_LIMIT_DEFAULT": "10000/minute"}
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "strongbox", "serve", "--port", str(port)],
            stdout=out, stderr=err, env=env, cwd=data_dir)
    try:
        key = None
        deadline = time.monotonic() + 60
        while key is None:
            assert process.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, stderr.read_text()
            found = re.search(r"sbk_[A-Za-z0-9_-]+", stdout.read_text())
            key = found.group(0) if found else None
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.1)
        yield LiveServer(url, key, stderr, data_dir)
    finally:
        process.terminate()
        process.wait(timeout=30)


def cli(live: LiveServer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args], env={"STRONGBOX_URL": live.url,
                                                   "STRONGBOX_API_KEY": live.key})
    return result.exit_code, result.output


def log_lines(live: LiveServer) -> list[dict[str, object]]:
    lines = []
    for line in live.log.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_serve_logs_json_lines_with_request_ids(live: LiveServer) -> None:
    response = httpx.get(f"{live.url}/api/v1/sources", headers={
        "X-API-Key": live.key, "X-Request-ID": "trace-me-123"})
    assert response.status_code == 200
    deadline = time.monotonic() + 10
    while True:
        hits = [line for line in log_lines(live) if line.get("request_id") == "trace-me-123"]
        if hits or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    [access] = hits
    assert access["logger"] == "strongbox.access" and access["level"] == "INFO"
    assert access["status_code"] == 200 and access["route"] == "/api/v1/sources"
    assert access["path"] == "/api/v1/sources" and "timestamp" in access
    assert "job_id" in access
    # Every line of the server's log is JSON, start-up lines included.
    text = [line for line in live.log.read_text().splitlines() if line.strip()]
    assert text and all(line.startswith("{") for line in text)


def test_cli_snapshots_and_status(live: LiveServer, tmp_path: Path) -> None:
    folder = tmp_path / "settings"
    folder.mkdir()
    (folder / "app.ini").write_text("level = 1\n")
    code, output = cli(live, "snapshots", "create", "cli snapshot", "--path", str(folder),
                       "--tag", "cli", "--wait", "--json")
    assert code == 0, output
    snapshot = json.loads(output)
    assert snapshot["status"] == "active" and snapshot["tags"] == ["cli"]

    code, output = cli(live, "snapshots", "list", "--tag", "cli")
    assert code == 0, output
    assert snapshot["_id"] in output and "1 snapshot(s)" in output

    (folder / "app.ini").write_text("level = 22222\n")
    code, output = cli(live, "snapshots", "restore", snapshot["_id"], "--reason", "cli test",
                       "--wait")
    assert code == 0, output
    assert "restore completed" in output and "pre-restore snapshot" in output
    assert (folder / "app.ini").read_text() == "level = 1\n"
    code, output = cli(live, "snapshots", "list", "--tag", "pre-restore", "--json")
    assert json.loads(output)["pagination"]["total_items"] == 1

    code, output = cli(live, "status", "--json")
    assert code in (0, 5, 6), output
    body = json.loads(output)
    assert body["status"] in ("healthy", "degraded", "unhealthy")
    assert code == {"healthy": 0, "degraded": 5, "unhealthy": 6}[body["status"]]
    code, output = cli(live, "status", "stats", "--days", "7")
    assert code == 0, output
    assert "last 7 day(s)" in output

    code, output = cli(live, "snapshots", "show", "00000000-0000-4000-8000-000000000000")
    assert code == 1 and "SNAPSHOT_NOT_FOUND" in output
