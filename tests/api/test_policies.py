"""``/api/v1/policies``: a source's backup policy set in one call and stored as schedules of
origin ``policy``; the effective policy, measured state and compliance read back; hand-made
schedules left alone; validation, roles, tenants; the CLI against a real HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from strongbox.catalog.types import utcnow
from strongbox.cli.main import app as cli_app
from strongbox.services.policies import policy_schedule_id
from tests.api.conftest import TENANT, Server
from tests.api.test_backups_contract import assert_error
from tests.api.test_schedules import live  # noqa: F401  (a fixture: a real HTTP server)
from tests.api.test_verification import verify_and_wait

BASE = "/api/v1/policies"
POLICY = {"backup": {"frequency": "daily", "time": "01:30", "timezone": "Europe/Berlin",
                     "type": "incremental"},
          "retention": {"keep_daily": 7, "keep_weekly": 4},
          "verification": {"cron": "0 5 * * 0", "deep": True},
          "rpo_target_hours": 26}


def new_source(server: Server, tmp_path: Path, name: str) -> str:
    """A files source of its own, so each test's policies and compliance are its own."""
    tree = tmp_path / name
    tree.mkdir(parents=True)
    (tree / "a.txt").write_text("policy test data\n")
    response = server.client.post("/api/v1/sources", headers=server.headers(), json={
        "name": name, "kind": "files", "path": str(tree)})
    assert response.status_code == 201, response.text
    return str(response.json()["_id"])


def put(server: Server, source_id: str, body: dict[str, Any], role: str = "admin"
        ) -> dict[str, Any]:
    response = server.client.put(f"{BASE}/{source_id}", headers=server.headers(role),
                                 json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def get(server: Server, source_id: str) -> dict[str, Any]:
    response = server.client.get(f"{BASE}/{source_id}", headers=server.headers("viewer"))
    assert response.status_code == 200, response.text
    return dict(response.json())


def schedules_of(server: Server, source_id: str) -> list[dict[str, Any]]:
    response = server.client.get("/api/v1/schedules", headers=server.headers("viewer"),
                                 params={"size": 100})
    assert response.status_code == 200, response.text
    return [s for s in response.json()["items"] if source_id in (s.get("source_ids") or [])]


def codes(policy: dict[str, Any]) -> set[str]:
    return {reason["code"] for reason in policy["compliance"]["reasons"]}


def test_set_creates_the_schedules_and_get_shows_exactly_that(server: Server,
                                                             tmp_path: Path) -> None:
    source_id = new_source(server, tmp_path, "policy target")
    assert get(server, source_id)["configured"] is False

    answer = put(server, source_id, POLICY)
    assert answer == get(server, source_id)  # a dry GET after PUT shows what was set
    policy = answer["policy"]
    assert policy["backup"] | {"schedule_id": None, "next_run": None} == {
        "schedule_id": None, "name": "policy: policy target backup", "cron": "30 1 * * *",
        "frequency": "daily", "time": "01:30", "day": None, "timezone": "Europe/Berlin",
        "enabled": True, "next_run": None, "last_run": None, "last_status": None,
        "type": "incremental"}
    assert policy["retention"] == {"keep_daily": 7, "keep_weekly": 4}
    assert (policy["verification"]["cron"], policy["verification"]["deep"],
            policy["verification"]["test_restore"]) == ("0 5 * * 0", True, False)
    assert policy["rpo_target_hours"] == 26
    assert answer["configured"] is True

    made = {s["action"]: s for s in schedules_of(server, source_id)}
    backup, verify = made["backup"], made["verify"]
    assert backup["_id"] == policy["backup"]["schedule_id"] == policy_schedule_id(
        TENANT, source_id, "backup")
    assert (backup["origin"], backup["cron"], backup["timezone"], backup["type"]) == (
        "policy", "30 1 * * *", "Europe/Berlin", "incremental")
    assert backup["retention"] == {"keep_daily": 7, "keep_weekly": 4}
    assert backup["source_ids"] == [source_id] and backup["next_run"]
    assert policy["backup"]["next_run"] is not None
    assert (verify["origin"], verify["cron"], verify["options"]) == (
        "policy", "0 5 * * 0", {"deep": True, "test_restore": False})
    assert verify["name"] == "policy: policy target verification"

    # Effective view: the covering schedules and the retention in force.
    assert policy["backup"]["schedule_id"] in [s["schedule_id"]
                                               for s in answer["backup_schedules"]]
    assert [s["schedule_id"] for s in answer["verification_schedules"]] == [verify["_id"]]
    assert answer["retention"]["schedules"] == [{
        "schedule_id": backup["_id"], "name": backup["name"],
        "retention": {"keep_daily": 7, "keep_weekly": 4}}]
    assert "enabled" in answer["retention"]["tenant"]
    # No backup yet: not compliant, and it says why.
    assert answer["compliance"]["status"] == "non_compliant"
    assert answer["compliance"]["compliant"] is False
    assert "NO_BACKUP" in codes(answer) and "NO_BACKUP_SCHEDULE" not in codes(answer)
    assert answer["state"]["last_backup"] is None and answer["state"]["restorable_backups"] == 0


def test_changing_a_policy_changes_the_same_schedules(server: Server, tmp_path: Path) -> None:
    source_id = new_source(server, tmp_path, "policy change")
    first = put(server, source_id, POLICY)
    second = put(server, source_id, {"backup": {"cron": "@hourly"},
                                     "retention": {"retention_count": 3}})
    assert second["policy"]["backup"]["schedule_id"] == first["policy"]["backup"]["schedule_id"]
    assert (second["policy"]["backup"]["cron"], second["policy"]["backup"]["type"],
            second["policy"]["backup"]["timezone"]) == ("@hourly", "full", "UTC")
    assert second["policy"]["verification"] is None  # left out: its schedule is gone
    assert second["policy"]["rpo_target_hours"] is None
    made = schedules_of(server, source_id)
    assert [(s["action"], s["cron"], s["retention"]) for s in made] == [
        ("backup", "0 * * * *", {"retention_count": 3})]
    assert "NO_VERIFICATION_SCHEDULE" in codes(second)


def test_hand_made_schedules_are_read_but_never_changed(server: Server, tmp_path: Path) -> None:
    source_id = new_source(server, tmp_path, "policy shared")
    hand = server.client.post("/api/v1/schedules", headers=server.headers("operator"), json={
        "name": "policy: policy shared backup", "cron": "0 4 * * *", "enabled": False,
        "source_ids": [source_id], "retention": {"keep_last": 2}})
    assert hand.status_code == 201, hand.text
    hand_made = hand.json()

    before = get(server, source_id)
    assert [s["origin"] for s in before["backup_schedules"]] == ["api"]
    assert "NO_BACKUP_SCHEDULE" in codes(before)  # the only one is disabled
    assert before["configured"] is False

    answer = put(server, source_id, {"backup": {"cron": "15 3 * * *"}})
    name = answer["policy"]["backup"]["name"]
    assert name != hand_made["name"] and name.startswith("policy: policy shared")
    assert {s["origin"] for s in answer["backup_schedules"]} == {"api", "policy"}
    assert "NO_BACKUP_SCHEDULE" not in codes(answer)
    assert answer["retention"]["schedules"][0]["retention"] == {"keep_last": 2}

    # The schedules API leaves the policy's schedules to the policy...
    owned = answer["policy"]["backup"]["schedule_id"]
    for method, path, body in (("PATCH", owned, {"description": "x"}),
                               ("DELETE", owned, None), ("POST", f"{owned}/toggle", {})):
        response = server.client.request(method, f"/api/v1/schedules/{path}",
                                          headers=server.headers(), json=body)
        assert_error(response, 409, "SCHEDULE_CONFLICT")
    # ...and removing the policy leaves the hand-made one as it was.
    response = server.client.delete(f"{BASE}/{source_id}", headers=server.headers())
    assert response.status_code == 200, response.text
    assert response.json()["removed_schedule_ids"] == [owned]
    after = server.client.get(f"/api/v1/schedules/{hand_made['_id']}",
                              headers=server.headers()).json()
    assert after == hand_made


def test_removing_a_policy(server: Server, tmp_path: Path) -> None:
    source_id = new_source(server, tmp_path, "policy removed")
    set_ = put(server, source_id, POLICY)
    response = server.client.delete(f"{BASE}/{source_id}", headers=server.headers())
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(body["removed_schedule_ids"]) == sorted([
        set_["policy"]["backup"]["schedule_id"], set_["policy"]["verification"]["schedule_id"]])
    assert body["policy"]["configured"] is False and body["policy"]["policy"] == {
        "backup": None, "retention": None, "verification": None, "rpo_target_hours": None}
    assert schedules_of(server, source_id) == []
    again = server.client.delete(f"{BASE}/{source_id}", headers=server.headers())
    assert again.status_code == 200 and again.json()["removed_schedule_ids"] == []


def test_compliance_follows_backups_verification_and_the_rpo_target(
        server: Server, tmp_path: Path) -> None:
    source_id = new_source(server, tmp_path, "policy measured")
    put(server, source_id, {**POLICY, "rpo_target_hours": 2})
    daily = get(server, source_id)
    # A daily schedule cannot keep a 2-hour target.
    assert "SCHEDULE_ABOVE_TARGET" in codes(daily)

    put(server, source_id, {**POLICY, "backup": {"cron": "@hourly"}, "rpo_target_hours": 2})
    created = server.backup_and_wait({"name": "measured", "type": "full",
                                      "source_id": source_id})
    unverified = get(server, source_id)
    assert unverified["state"]["last_backup"]["backup_id"] == created["backup_id"]
    assert unverified["state"]["last_verified_backup"] is None
    assert unverified["state"]["rpo"]["current_seconds"] is not None
    assert "NEVER_VERIFIED" in codes(unverified)
    assert not codes(unverified) & {"NO_BACKUP", "SCHEDULE_ABOVE_TARGET", "RPO_ABOVE_TARGET"}

    verify_and_wait(server, created["backup_id"])
    verified = get(server, source_id)
    assert verified["state"]["last_verified_backup"]["backup_id"] == created["backup_id"]
    assert verified["compliance"] == {"status": "compliant", "compliant": True, "reasons": []}

    # Three hours later (the policies' clock moved on), nothing new: the RPO is over target.
    policies = server.services.policies
    later = utcnow() + timedelta(hours=3)
    policies.clock = lambda: later
    try:
        stale = get(server, source_id)
    finally:
        policies.clock = server.services.disaster_recovery.plans.clock
    assert stale["state"]["rpo"]["current_hours"] >= 3
    assert stale["compliance"]["status"] == "non_compliant"
    assert "RPO_ABOVE_TARGET" in codes(stale)


@pytest.mark.parametrize(("body", "status", "code", "field"), [
    ({"backup": {"cron": "not cron"}}, 400, "VALIDATION_FAILED", "backup.cron"),
    ({"backup": {"cron": "0 1 * * *", "frequency": "daily"}}, 400, "VALIDATION_FAILED",
     "backup.frequency"),
    ({"backup": {}}, 400, "VALIDATION_FAILED", "backup.cron"),
    ({"backup": {"cron": "@daily", "timezone": "Mars/Base"}}, 400, "VALIDATION_FAILED",
     "backup.timezone"),
    ({"backup": {"cron": "@daily"}, "verification": {"frequency": "weekly", "day": "someday"}},
     400, "VALIDATION_FAILED", "verification.day"),
    ({"backup": {"cron": "@daily"}, "retention": {"keep_daily": 0}}, 400, "VALIDATION_FAILED",
     "retention.keep_daily"),
    ({"backup": {"cron": "@daily"}, "rpo_target_hours": 0}, 400, "VALIDATION_FAILED",
     "rpo_target_hours"),
    ({"retention": {"keep_last": 1}}, 400, "VALIDATION_FAILED", "backup"),
    ({"backup": {"cron": "@daily", "type": "selective"}}, 400, "INVALID_BACKUP_TYPE",
     "backup.type"),
])
def test_validation_errors(server: Server, tmp_path: Path, body: dict[str, Any], status: int,
                           code: str, field: str) -> None:
    source_id = new_source(server, tmp_path, f"policy invalid {tmp_path.name}")
    response = server.client.put(f"{BASE}/{source_id}", headers=server.headers(), json=body)
    assert_error(response, status, code)
    assert field in [e["field"] for e in response.json()["validation_errors"]]
    assert schedules_of(server, source_id) == []  # nothing was written


def test_a_bad_verification_writes_no_backup_schedule_either(server: Server,
                                                             tmp_path: Path) -> None:
    source_id = new_source(server, tmp_path, "policy all or nothing")
    response = server.client.put(f"{BASE}/{source_id}", headers=server.headers(), json={
        "backup": {"cron": "not cron"}, "verification": {"cron": "@daily", "timezone": "X/Y"},
        "rpo_target_hours": 24})
    assert_error(response, 400, "VALIDATION_FAILED")
    fields = {e["field"] for e in response.json()["validation_errors"]}
    assert {"backup.cron", "verification.timezone"} <= fields
    assert schedules_of(server, source_id) == []


def test_roles_and_tenants(server: Server, tmp_path: Path) -> None:
    source_id = new_source(server, tmp_path, "policy guarded")
    for role in ("viewer", "operator"):
        response = server.client.put(f"{BASE}/{source_id}", headers=server.headers(role),
                                     json=POLICY)
        assert_error(response, 403, "FORBIDDEN")
        response = server.client.delete(f"{BASE}/{source_id}", headers=server.headers(role))
        assert_error(response, 403, "FORBIDDEN")
    put(server, source_id, POLICY)
    other = server.other()
    for method, body in (("GET", None), ("PUT", POLICY), ("DELETE", None)):
        response = server.client.request(method, f"{BASE}/{source_id}", headers=other,
                                         json=body)
        assert_error(response, 404, "SOURCE_NOT_FOUND")
    assert_error(server.client.get(f"{BASE}/nonsense", headers=server.headers()), 404,
                 "SOURCE_NOT_FOUND")
    listed = server.client.get(BASE, headers=other).json()
    assert listed["items"] == [] and listed["pagination"]["total_items"] == 0
    assert get(server, source_id)["configured"] is True  # the other tenant changed nothing


def test_the_list_covers_every_source_paginated(server: Server, tmp_path: Path) -> None:
    new_source(server, tmp_path, "policy listed")
    sources = server.client.get("/api/v1/sources", headers=server.headers(),
                                params={"size": 100}).json()["items"]
    first = server.client.get(BASE, headers=server.headers("viewer"),
                              params={"page": 1, "size": 2}).json()
    assert first["pagination"] == {"total_items": len(sources),
                                   "total_pages": -(-len(sources) // 2), "current_page": 1,
                                   "page_size": 2, "has_next": len(sources) > 2,
                                   "has_previous": False}
    seen = []
    for page in range(1, first["pagination"]["total_pages"] + 1):
        answer = server.client.get(BASE, headers=server.headers("viewer"),
                                   params={"page": page, "size": 2}).json()
        seen += [item["source_id"] for item in answer["items"]]
    assert seen == [s["_id"] for s in sources]


# --- CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli(live: tuple[str, str]) -> Iterator[Any]:  # noqa: F811
    url, key = live
    runner = CliRunner()
    env = {"STRONGBOX_URL": url, "STRONGBOX_API_KEY": key}

    def run(*args: str) -> Any:
        return runner.invoke(cli_app, ["policies", *args], env=env)

    yield run


def test_cli_set_show_list_remove(cli: Any) -> None:
    listed = cli("list", "--json")
    assert listed.exit_code == 0, listed.output
    source_id = json.loads(listed.output)["items"][0]["source_id"]

    set_ = cli("set", source_id, "--frequency", "daily", "--time", "02:15", "--timezone",
               "Europe/Berlin", "--type", "incremental", "--keep-daily", "7",
               "--keep-weekly", "4", "--verify-cron", "0 6 * * 0", "--deep",
               "--rpo-target-hours", "26", "--json")
    assert set_.exit_code == 0, set_.output
    policy = json.loads(set_.output)["policy"]
    assert (policy["backup"]["cron"], policy["backup"]["type"], policy["retention"],
            policy["verification"]["deep"], policy["rpo_target_hours"]) == (
        "15 2 * * *", "incremental", {"keep_daily": 7, "keep_weekly": 4}, True, 26)

    shown = cli("show", source_id)
    assert shown.exit_code == 0, shown.output
    assert "15 2 * * *" in shown.output and "Europe/Berlin" in shown.output
    assert "NO_BACKUP" in shown.output  # the compliance reasons are printed

    table = cli("list")
    assert table.exit_code == 0 and "non_compliant" in table.output

    bad = cli("set", source_id, "--cron", "not cron")
    assert bad.exit_code == 1 and "VALIDATION_FAILED" in bad.stderr
    assert "backup.cron" in bad.stderr

    removed = cli("remove", source_id)
    assert removed.exit_code == 0 and "removed" in removed.output
    missing = cli("show", "00000000-0000-4000-8000-000000000000")
    assert missing.exit_code == 1 and "SOURCE_NOT_FOUND" in missing.stderr


def test_deleting_a_source_deletes_its_policy_schedules(server: Server,
                                                        tmp_path: Path) -> None:
    source_id = new_source(server, tmp_path, "policy orphan")
    owned = put(server, source_id, {"backup": {"cron": "@daily"}})["policy"]["backup"]
    by_hand = server.client.post("/api/v1/schedules", headers=server.headers(), json={
        "name": "by hand for the orphan", "cron": "@daily", "source_ids": [source_id]})
    assert by_hand.status_code == 201, by_hand.text
    response = server.client.delete(f"/api/v1/sources/{source_id}", headers=server.headers())
    assert response.status_code in (200, 204), response.text
    assert_error(server.client.get(f"{BASE}/{source_id}", headers=server.headers()), 404,
                 "SOURCE_NOT_FOUND")
    assert_error(server.client.get(f"/api/v1/schedules/{owned['schedule_id']}",
                                   headers=server.headers()), 404, "SCHEDULE_NOT_FOUND")
    # A schedule made by hand is the user's: it stays (its runs will say what is missing).
    kept = server.client.get(f"/api/v1/schedules/{by_hand.json()['_id']}",
                             headers=server.headers())
    assert kept.status_code == 200, kept.text


def test_the_tenant_settings_retention_counts(server: Server, tmp_path: Path) -> None:
    source_id = new_source(server, tmp_path, "policy tenant retention")
    put(server, source_id, {"backup": {"cron": "@daily"}})
    assert "NO_RETENTION" in codes(get(server, source_id))
    url = "/api/v1/backups/cleanup/policy"
    response = server.client.put(url, headers=server.headers(),
                                 json={"enabled": True, "max_backups": 1000})
    assert response.status_code == 200, response.text
    try:
        answer = get(server, source_id)
        assert answer["retention"]["tenant"]["max_backups"] == 1000
        assert "NO_RETENTION" not in codes(answer)
    finally:
        server.client.put(url, headers=server.headers(), json={"enabled": False,
                                                               "max_backups": None})
