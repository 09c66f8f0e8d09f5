"""``strongbox cleanup plan|execute|show|policy`` and ``strongbox backups protect|unprotect``
against a real server over loopback HTTP."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from strongbox.cli.main import app as cli
from strongbox.services.backups import NewBackup
from strongbox.services.principal import Principal, Role
from strongbox.services.sources import SourceSpec
from tests.api.conftest import Live, live_server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(tmp_path_factory.mktemp("cleanup-cli")) as started:
        yield started


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
