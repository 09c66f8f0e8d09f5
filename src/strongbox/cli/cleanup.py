"""``strongbox cleanup ...``, over HTTP.

A cleanup is two steps on purpose: ``plan`` is a dry run that prints what would be deleted
and why, with a plan id; ``execute PLAN_ID --yes`` deletes exactly that list and prunes.

Exit codes: 0 done; 1 an API error (or the confirmation was declined); 2 server
unreachable; 4 the cleanup job did not complete.
"""

from __future__ import annotations

from typing import Any

import typer

from strongbox.cli.client import (
    ApiClient,
    ApiKeyOption,
    JsonOption,
    ServerOption,
    poll,
    show,
)
from strongbox.cli.console import out, print_json

EXIT_NOT_COMPLETED = 4
BASE = "/api/v1/backups/cleanup"

app = typer.Typer(help="Retention cleanup: plan (dry run) and execute; the retention policy.",
                  no_args_is_help=True)


def _count(flag: str, help_text: str) -> Any:
    return typer.Option(None, flag, min=0, help=help_text)


@app.command("plan")
def plan(keep_last: int | None = _count("--keep-last", "Keep the N newest per source."),
         keep_hourly: int | None = _count("--keep-hourly", "Newest of each of N hours."),
         keep_daily: int | None = _count("--keep-daily", "Newest of each of N days."),
         keep_weekly: int | None = _count("--keep-weekly", "Newest of each of N weeks."),
         keep_monthly: int | None = _count("--keep-monthly", "Newest of each of N months."),
         keep_yearly: int | None = _count("--keep-yearly", "Newest of each of N years."),
         keep_within_days: int | None = typer.Option(
             None, "--keep-within-days", min=1, help="Keep all of the N days before the "
                                                     "newest."),
         timezone: str | None = typer.Option(None, "--timezone", help="Calendar zone (UTC)."),
         keep_count: int | None = typer.Option(None, "--keep-count", "--max-backups", min=1,
                                               help="At most N backups per source."),
         older_than_days: int | None = typer.Option(
             None, "--older-than-days", "--max-age-days", min=1,
             help="Delete backups older than N days."),
         max_total_size_gb: float | None = typer.Option(
             None, "--max-total-size-gb", help="Delete the oldest above this total."),
         delete_failed: bool = typer.Option(False, "--delete-failed",
                                            help="Delete failed and corrupted backups."),
         delete_unverified: bool = typer.Option(False, "--delete-unverified",
                                                help="Delete backups not verified valid."),
         source: list[str] = typer.Option([], "--source", "-s",
                                          help="Only this source id (repeatable)."),
         use_settings: bool = typer.Option(False, "--use-settings",
                                           help="Start from the server's retention policy."),
         reason: str | None = typer.Option(None, "--reason"),
         server: str = ServerOption, api_key: str = ApiKeyOption,
         as_json: bool = JsonOption) -> None:
    """Dry run: what a cleanup would delete, and a plan id to execute it with.

    Without any rule, the server's retention policy (`cleanup policy`) is used."""
    body: dict[str, Any] = {
        "keep_last": keep_last, "keep_hourly": keep_hourly, "keep_daily": keep_daily,
        "keep_weekly": keep_weekly, "keep_monthly": keep_monthly, "keep_yearly": keep_yearly,
        "keep_within_days": keep_within_days, "timezone": timezone, "keep_count": keep_count,
        "older_than_days": older_than_days, "max_total_size_gb": max_total_size_gb,
        "delete_failed": delete_failed, "delete_unverified": delete_unverified,
        "source_ids": source or None, "use_settings": use_settings, "reason": reason,
        "dry_run": True}
    with ApiClient(server, api_key) as client:
        result = client.post(BASE, {k: v for k, v in body.items() if v is not None})
    if as_json:
        print_json(result)
        return
    _print_plan(result)


def _print_plan(result: dict[str, Any]) -> None:
    for item in result["backups_to_delete"]:
        out.print(f"delete  {item['backup_id']}  {item['created_at'][:19]}  "
                  f"{item['source_name']}  {item['name']}: {'; '.join(item['reasons'])}",
                  highlight=False)
    for item in result["backups_kept"]:
        out.print(f"keep    {item['backup_id']}  {item['created_at'][:19]}  "
                  f"{item['source_name']}  {item['name']}: {'; '.join(item['reasons'])}",
                  highlight=False)
    analysis = result["analysis"]
    out.print(f"{analysis['eligible_for_removal']} of {analysis['total_backups']} backups to "
              f"delete, {analysis['space_to_free']} to free "
              f"({analysis['protected_backups']} protected)", highlight=False)
    out.print(f"plan {result['cleanup_plan_id']} (expires {result['expires_at'][:19]}Z)",
              highlight=False)
    if result["action_required"]:
        out.print(f"execute it with: strongbox cleanup execute {result['cleanup_plan_id']} "
                  "--yes", highlight=False)


@app.command("execute")
def execute(plan_id: str = typer.Argument(..., help="The plan id `cleanup plan` printed."),
            yes: bool = typer.Option(False, "--yes", "-y", help="Confirm without asking."),
            wait: bool = typer.Option(True, "--wait/--no-wait",
                                      help="Wait for the cleanup to finish."),
            timeout: float = typer.Option(3600.0, "--timeout", help="Seconds to wait at most."),
            server: str = ServerOption, api_key: str = ApiKeyOption,
            as_json: bool = JsonOption) -> None:
    """Delete exactly what the plan lists, then prune the repository (admin)."""
    if not yes and not typer.confirm(f"Delete the backups listed by plan {plan_id}?"):
        out.print("nothing deleted", highlight=False)
        raise typer.Exit(1)
    with ApiClient(server, api_key) as client:
        started = client.post(f"{BASE}/execute", {"cleanup_plan_id": plan_id,
                                                  "confirmation": True})
        if not wait:
            show(started, as_json, f"cleanup job {started['job_id']} started: "
                                   f"{started['backups_to_remove']} backups to delete")
            return
        status = _wait(client, started["job_id"], timeout)
    result = status.get("result") or {}
    summary = (f"deleted {result.get('deleted_count', 0)} backups, skipped "
               f"{result.get('skipped_count', 0)}, freed {result.get('freed_space', 0)} bytes"
               if status["status"] == "completed"
               else f"cleanup {status['status']}: {(status.get('error') or {}).get('message')}")
    show(status, as_json, summary)
    for skipped in result.get("skipped", []) if not as_json else []:
        out.print(f"skipped {skipped['backup_id']}: {skipped['reason']}", highlight=False)
    if status["status"] != "completed":
        raise typer.Exit(EXIT_NOT_COMPLETED)


def _wait(client: ApiClient, job_id: str, timeout: float) -> dict[str, Any]:
    status = poll(client, f"{BASE}/jobs/{job_id}", timeout)
    if status is None:
        out.print(f"still running after {timeout:.0f}s: job {job_id}", highlight=False)
        raise typer.Exit(EXIT_NOT_COMPLETED)
    return status


@app.command("show")
def show_plan(plan_id: str = typer.Argument(...), server: str = ServerOption,
              api_key: str = ApiKeyOption, as_json: bool = JsonOption) -> None:
    """A plan: what it lists, whether it ran, and what it did."""
    with ApiClient(server, api_key) as client:
        result = client.get(f"{BASE}/plans/{plan_id}")
    if as_json:
        print_json(result)
        return
    _print_plan(result)
    out.print(f"status: {result['status']}", highlight=False)


@app.command("policy")
def policy(enable: bool | None = typer.Option(None, "--enable/--disable",
                                              help="Turn retention on or off."),
           auto_cleanup: bool | None = typer.Option(None, "--auto-cleanup/--no-auto-cleanup"),
           schedule: str | None = typer.Option(None, "--schedule",
                                               help="Cron expression of the cleanup."),
           max_backups: int | None = typer.Option(None, "--max-backups", min=1),
           max_age_days: int | None = typer.Option(None, "--max-age-days", min=1),
           max_total_size_gb: float | None = typer.Option(None, "--max-total-size-gb"),
           keep_last: int | None = _count("--keep-last", "Rule: N newest."),
           keep_daily: int | None = _count("--keep-daily", "Rule: N days."),
           keep_weekly: int | None = _count("--keep-weekly", "Rule: N weeks."),
           keep_monthly: int | None = _count("--keep-monthly", "Rule: N months."),
           keep_yearly: int | None = _count("--keep-yearly", "Rule: N years."),
           server: str = ServerOption, api_key: str = ApiKeyOption,
           as_json: bool = JsonOption) -> None:
    """Show the retention policy; with options, change it (admin)."""
    patch: dict[str, Any] = {k: v for k, v in {
        "enabled": enable, "auto_cleanup": auto_cleanup, "cleanup_schedule": schedule,
        "max_backups": max_backups, "max_age_days": max_age_days,
        "max_total_size_gb": max_total_size_gb}.items() if v is not None}
    rules = {k: v for k, v in {"keep_last": keep_last, "keep_daily": keep_daily,
                               "keep_weekly": keep_weekly, "keep_monthly": keep_monthly,
                               "keep_yearly": keep_yearly}.items() if v is not None}
    if rules:
        patch["rules"] = rules
    with ApiClient(server, api_key) as client:
        result = client.put(f"{BASE}/policy", patch) if patch else client.get(f"{BASE}/policy")
    if as_json or not patch:
        print_json(result)
    else:
        out.print(f"{result['message']}: {', '.join(result['updated_fields']) or '-'}",
                  highlight=False)
