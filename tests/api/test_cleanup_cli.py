"""``strongbox cleanup plan|execute|show|policy`` and ``strongbox backups protect|unprotect``
against a real server over loopback HTTP."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from strongbox.api.app import create_app
from strongbox.cli.main import app as cli
from strongbox.services.backups import NewBackup
from strongbox.services.container import Services
from strongbox.services.principal import Principal, Role
from strongbox.services.sources import SourceSpec
from tests.api.conftest import settings_for


class Live:
    def __init__(self, url: str, key: str, services: Services) -> None:
        self.url, self.key, self.services = url, key, services

    def run(self, *args: str) -> Any:
        return CliRunner().invoke(cli, [*args, "--server", self.url, "--api-key", self.key])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data_dir = tmp_path_factory.mktemp("cleanup-cli")
    app = create_app(settings_for(data_dir))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    try:
        yield Live(f"http://127.0.0.1:{port}", app.state.start_report.demo.token,
                   app.state.services)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def backup(live: Live, source_id: str, root: Path) -> str:
    (root / "data.bin").write_bytes(os.urandom(50_000))
    created = live.services.backups.create(
        Principal("cli-test", "cli-test", "default", Role.ADMIN),
        NewBackup(name="cli", type="full", source_id=source_id))
    deadline = time.monotonic() + 60
    while live.services.backups.get("default", created.backup.id).status != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return created.backup.id


def test_plan_then_execute_with_protection(live: Live, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    source = live.services.sources.create("default", SourceSpec(
        name="cli tree", kind="files", path=str(root)))
    old, pinned, newest = (backup(live, source.id, root) for _ in range(3))

    protected = live.run("backups", "protect", pinned, "--reason", "keep for audit")
    assert protected.exit_code == 0, protected.output
    assert "protected: keep for audit" in protected.output

    planned = live.run("cleanup", "plan", "--keep-last", "1", "--source", source.id, "--json")
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.output)
    assert [b["backup_id"] for b in plan["backups_to_delete"]] == [old]
    human = live.run("cleanup", "show", plan["cleanup_plan_id"])
    assert f"delete  {old}" in human.output and "protected: keep for audit" in human.output

    declined = CliRunner().invoke(cli, ["cleanup", "execute", plan["cleanup_plan_id"],
                                        "--server", live.url, "--api-key", live.key],
                                  input="n\n")
    assert declined.exit_code == 1 and "nothing deleted" in declined.output
    done = live.run("cleanup", "execute", plan["cleanup_plan_id"], "--yes")
    assert done.exit_code == 0, done.output
    assert "deleted 1 backups, skipped 0" in done.output
    again = live.run("cleanup", "execute", plan["cleanup_plan_id"], "--yes")
    assert again.exit_code == 1 and "CLEANUP_PLAN_ALREADY_EXECUTED" in again.output

    lifted = live.run("backups", "unprotect", pinned, "--reason", "audit done")
    assert lifted.exit_code == 0 and "no longer protected" in lifted.output
    assert live.services.backups.get("default", newest).status == "completed"


def test_policy_show_and_change(live: Live) -> None:
    changed = live.run("cleanup", "policy", "--enable", "--keep-daily", "7", "--schedule",
                       "0 3 * * *")
    assert changed.exit_code == 0, changed.output
    assert "retention.rules.keep_daily" in changed.output
    shown = live.run("cleanup", "policy")
    policy = json.loads(shown.output)
    assert policy["enabled"] is True and policy["rules"]["keep_daily"] == 7
    bad = live.run("cleanup", "policy", "--schedule", "every day")
    assert bad.exit_code == 1
    assert "VALIDATION_FAILED" in bad.output and "retention.cleanup_schedule" in bad.output
