"""``strongbox backups ...`` against a real server over HTTP: create and wait, list, show,
protect, delete (a protected backup needs --force and a reason)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.api.conftest import Live, live_server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(tmp_path_factory.mktemp("backups-cli")) as started:
        yield started


def test_create_wait_list_show_protect_delete(live: Live) -> None:
    made = live.run("backups", "create", "from the cli", "--verify", "--retention-days", "30",
                    "--wait", "--json")
    assert made.exit_code == 0, made.output
    status = json.loads(made.output)
    assert status["status"] == "completed"
    backup_id = status["backup_id"]

    listed = live.run("backups", "list")
    assert listed.exit_code == 0, listed.output
    assert backup_id in listed.output and "from the cli" in listed.output

    shown = json.loads(live.run("backups", "show", backup_id).output)
    assert shown["name"] == "from the cli" and shown["expires_at"]

    pinned = live.run("backups", "protect", backup_id, "--reason", "audit hold")
    assert pinned.exit_code == 0, pinned.output
    refused = live.run("backups", "delete", backup_id)
    assert refused.exit_code == 1 and "RETENTION_POLICY_VIOLATION" in refused.stderr
    deleted = live.run("backups", "delete", backup_id, "--force", "--reason", "hold lifted")
    assert deleted.exit_code == 0, deleted.output
    assert live.run("backups", "show", backup_id).exit_code == 1


def test_bad_input_is_one_line_and_exit_1(live: Live) -> None:
    result = live.run("backups", "create", "bad/name")
    assert result.exit_code == 1
    assert "VALIDATION" in result.stderr and "name" in result.stderr
