"""``strongbox policies list|show|set|remove``: each source's backup policy over HTTP.

Calls ``/api/v1/policies`` on a running server (``--server``/``STRONGBOX_URL``,
``--api-key``/``STRONGBOX_API_KEY``). Exit codes: 0 done; 1 the server refused (the
error's code and message on stderr); 2 the server is unreachable.
"""

from __future__ import annotations

from typing import Any

import typer

from strongbox.cli.client import ApiClient, ApiKeyOption, JsonOption, ServerOption, show
from strongbox.cli.console import out, print_json

app = typer.Typer(help="Backup policies on a running server: per source, its backup and "
                       "verify schedules, retention, RPO target and compliance.",
                  no_args_is_help=True)

def _when(value: Any) -> str:
    return str(value).replace("T", " ")[:19] if value else "-"


def _timing(part: dict[str, Any] | None) -> str:
    if not part:
        return "none"
    return f"{part['cron']} {part['timezone']}, next run {_when(part.get('next_run'))}"


def _summary(policy: dict[str, Any]) -> list[str]:
    doc, state = policy["policy"], policy["state"]
    rpo = state["rpo"]
    last = state["last_backup"]
    verified = state["last_verified_backup"]
    lines = [
        f"{policy['source_name']} ({policy['source_kind']}, {policy['source_id']}): "
        f"{policy['compliance']['status']}"
        + ("" if policy["configured"] else " (no policy set)"),
        f"  backup:       {_timing(doc['backup'])}"
        + (f", {doc['backup']['type']}" if doc["backup"] else ""),
        f"  retention:    {doc['retention'] or 'none'}",
        f"  verification: {_timing(doc['verification'])}",
        f"  RPO:          now {rpo['current_hours'] if rpo['current_hours'] is not None else '-'}"
        f" h, target {doc['rpo_target_hours'] or '-'} h",
        f"  last backup:  {_when(last['created_at']) if last else '-'}; last verified "
        f"{_when(verified['created_at']) if verified else '-'}",
        f"  schedules:    {len(policy['backup_schedules'])} backup, "
        f"{len(policy['verification_schedules'])} verify",
    ]
    lines += [f"  {r['severity']}: {r['code']}: {r['message']}"
              for r in policy["compliance"]["reasons"]]
    return lines


@app.command("list")
def list_policies(
    page: int = typer.Option(1, "--page", min=1),
    size: int = typer.Option(50, "--size", min=1, max=100),
    server: str = ServerOption, api_key: str = ApiKeyOption, as_json: bool = JsonOption,
) -> None:
    """Every source's policy and compliance, one line each."""
    with ApiClient(server, api_key) as client:
        answer = client.get("/api/v1/policies", page=page, size=size)
    if as_json:
        print_json(answer)
        return
    for item in answer["items"]:
        reasons = ", ".join(r["code"] for r in item["compliance"]["reasons"]) or "-"
        backup = item["policy"]["backup"]
        out.print(f"{item['source_id']}  {item['source_name']!r}: "
                  f"{item['compliance']['status']} ({reasons}); policy "
                  + (f"{backup['cron']} {backup['timezone']}" if backup else "not set"),
                  highlight=False, soft_wrap=True)
    out.print(f"{answer['pagination']['total_items']} source(s)", highlight=False)


@app.command("show")
def show_policy(source_id: str, server: str = ServerOption, api_key: str = ApiKeyOption,
                as_json: bool = JsonOption) -> None:
    """A source's policy, what is in force and why it is (not) compliant."""
    with ApiClient(server, api_key) as client:
        answer = client.get(f"/api/v1/policies/{source_id}")
    show(answer, as_json, "\n".join(_summary(answer)))


@app.command("set")
def set_policy(
    source_id: str,
    cron: str | None = typer.Option(None, "--cron", help='Backups: e.g. "30 2 * * *"'),
    frequency: str | None = typer.Option(None, "--frequency",
                                         help="Backups: hourly, daily, weekly or monthly"),
    at: str | None = typer.Option(None, "--time", help="HH:MM for --frequency"),
    day: str | None = typer.Option(None, "--day", help="weekly: monday…; monthly: 1-31/last"),
    timezone: str = typer.Option("UTC", "--timezone", help="IANA zone of both schedules"),
    backup_type: str = typer.Option("full", "--type",
                                    help="full, incremental or differential"),
    retention_days: int | None = typer.Option(None, "--retention-days", min=1),
    retention_count: int | None = typer.Option(None, "--retention-count", min=1),
    keep_last: int | None = typer.Option(None, "--keep-last", min=1),
    keep_hourly: int | None = typer.Option(None, "--keep-hourly", min=1),
    keep_daily: int | None = typer.Option(None, "--keep-daily", min=1),
    keep_weekly: int | None = typer.Option(None, "--keep-weekly", min=1),
    keep_monthly: int | None = typer.Option(None, "--keep-monthly", min=1),
    keep_yearly: int | None = typer.Option(None, "--keep-yearly", min=1),
    verify_cron: str | None = typer.Option(None, "--verify-cron",
                                           help="A verify schedule (default: none)"),
    verify_frequency: str | None = typer.Option(None, "--verify-frequency"),
    verify_time: str | None = typer.Option(None, "--verify-time"),
    verify_day: str | None = typer.Option(None, "--verify-day"),
    deep: bool = typer.Option(False, "--deep", help="Verify: read every blob"),
    test_restore: bool = typer.Option(False, "--test-restore",
                                      help="Verify: restore into scratch too"),
    rpo_target_hours: float | None = typer.Option(None, "--rpo-target-hours"),
    server: str = ServerOption, api_key: str = ApiKeyOption, as_json: bool = JsonOption,
) -> None:
    """Set (replace) a source's policy: what is not given is reset."""
    given = {"retention_days": retention_days, "retention_count": retention_count,
             "keep_last": keep_last, "keep_hourly": keep_hourly, "keep_daily": keep_daily,
             "keep_weekly": keep_weekly, "keep_monthly": keep_monthly,
             "keep_yearly": keep_yearly}
    verification = _drop_none({"cron": verify_cron, "frequency": verify_frequency,
                               "time": verify_time, "day": verify_day})
    body = {
        "backup": _drop_none({"cron": cron, "frequency": frequency, "time": at, "day": day,
                              "timezone": timezone, "type": backup_type}),
        "retention": _drop_none(given) or None,
        "verification": ({**verification, "timezone": timezone, "deep": deep,
                          "test_restore": test_restore} if verification else None),
        "rpo_target_hours": rpo_target_hours}
    with ApiClient(server, api_key) as client:
        answer = client.put(f"/api/v1/policies/{source_id}", body)
    show(answer, as_json, "\n".join(["policy set:", *_summary(answer)]))


@app.command("remove")
def remove_policy(source_id: str, server: str = ServerOption, api_key: str = ApiKeyOption,
                  as_json: bool = JsonOption) -> None:
    """Remove a source's policy: its schedules are deleted (the backups stay)."""
    with ApiClient(server, api_key) as client:
        answer = client.delete(f"/api/v1/policies/{source_id}")
    show(answer, as_json, answer["message"])


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
