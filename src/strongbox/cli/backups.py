"""``strongbox backups ...``: backups on a running server, over HTTP (the same calls as
``/api/v1/backups``): create one and follow it, list, show, delete, protect and unprotect.

Exit codes: 0 done; 1 an API error; 2 server unreachable; 4 the backup job did not
complete (with ``--wait``).
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
BASE = "/api/v1/backups"
FINAL = ("completed", "failed")

app = typer.Typer(help="Backups on a running server: create, list, show, delete, protect.",
                  no_args_is_help=True)


def _options(compression_level: int | None, verify: bool, retention_days: int | None,
             notify_email: list[str], notify_webhook: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if compression_level is not None:
        options["compression_level"] = compression_level
    if verify:
        options["verify"] = True
    if retention_days is not None:
        options["retention_days"] = retention_days
    if notify_email or notify_webhook:
        options["notification"] = {k: v for k, v in (("email", notify_email or None),
                                                      ("webhook", notify_webhook)) if v}
    return options


@app.command("create")
def create(name: str = typer.Argument(..., help="Letters, digits, spaces, - and _."),
           backup_type: str = typer.Option("full", "--type", "-t",
                                           help="full, incremental, differential, selective."),
           source: str | None = typer.Option(None, "--source", "-s",
                                             help="Source id (default: the tenant's first "
                                                  "SQLite source)."),
           description: str | None = typer.Option(None, "--description", "-d"),
           project: list[str] = typer.Option([], "--project", help="Selective: a project id "
                                                                   "(repeatable)."),
           compression_level: int | None = typer.Option(None, "--compression-level", min=1,
                                                        max=9),
           verify: bool = typer.Option(False, "--verify", help="Verify when it completes."),
           retention_days: int | None = typer.Option(None, "--retention-days", min=1,
                                                     help="Expires after N days."),
           notify_email: list[str] = typer.Option([], "--notify-email",
                                                  help="Mail this address (repeatable)."),
           notify_webhook: str | None = typer.Option(None, "--notify-webhook",
                                                     help="POST this backup's events here."),
           wait: bool = typer.Option(False, "--wait", help="Follow the job to its end."),
           timeout: float = typer.Option(3600.0, "--timeout", help="Seconds to wait at most."),
           server: str = ServerOption, api_key: str = ApiKeyOption,
           as_json: bool = JsonOption) -> None:
    """Start a backup (operator); with --wait, follow it to the end."""
    body: dict[str, Any] = {"name": name, "type": backup_type}
    for key, value in (("source_id", source), ("description", description)):
        if value is not None:
            body[key] = value
    if project:
        body["filters"] = {"projects": project}
    options = _options(compression_level, verify, retention_days, notify_email,
                       notify_webhook)
    if options:
        body["options"] = options
    with ApiClient(server, api_key) as client:
        created = client.post(BASE, body)
        if not wait:
            show(created, as_json, f"backup {created['backup_id']} started "
                                   f"(job {created['job_id']}): {created['message']}")
            return
        status = _follow(client, created["job_id"], timeout)
    if as_json:
        print_json(status)
    else:
        out.print(f"backup {created['backup_id']}: {status['status']}", highlight=False)
    if status["status"] != "completed":
        raise typer.Exit(EXIT_NOT_COMPLETED)


def _follow(client: ApiClient, job_id: str, timeout: float) -> dict[str, Any]:
    path = f"{BASE}/jobs/{job_id}"
    return poll(client, path, timeout, done=FINAL) or client.get(path)


@app.command("list")
def list_backups(status: str | None = typer.Option(None, "--status"),
                 backup_type: str | None = typer.Option(None, "--type"),
                 search: str | None = typer.Option(None, "--search"),
                 page: int = typer.Option(1, "--page", min=1),
                 size: int = typer.Option(20, "--size", min=1, max=100),
                 server: str = ServerOption, api_key: str = ApiKeyOption,
                 as_json: bool = JsonOption) -> None:
    """The tenant's backups, newest first."""
    with ApiClient(server, api_key) as client:
        result = client.get(BASE, page=page, size=size, status=status, type=backup_type,
                            search=search)
    if as_json:
        print_json(result)
        return
    for backup in result["items"]:
        pinned = "  protected" if backup.get("protected") else ""
        out.print(f"{backup['_id']}  {backup['created_at']}  {backup['type']:<12} "
                  f"{backup['status']:<11} {backup.get('size_bytes', 0):>12} B  "
                  f"{backup['name']}{pinned}", highlight=False)
    pagination = result["pagination"]
    out.print(f"page {pagination['current_page']} of {pagination['total_pages']}, "
              f"{pagination['total_items']} backup(s)", highlight=False)


@app.command("show")
def show_backup(backup_id: str = typer.Argument(...), server: str = ServerOption,
                api_key: str = ApiKeyOption) -> None:
    """One backup's details (JSON)."""
    with ApiClient(server, api_key) as client:
        print_json(client.get(f"{BASE}/{backup_id}"))


@app.command("delete")
def delete(backup_id: str = typer.Argument(...),
           force: bool = typer.Option(False, "--force", help="Also a running or protected "
                                                             "backup."),
           reason: str | None = typer.Option(None, "--reason",
                                             help="Required to delete a protected backup."),
           server: str = ServerOption, api_key: str = ApiKeyOption,
           as_json: bool = JsonOption) -> None:
    """Delete a backup (admin)."""
    params = {"force": "true" if force else None, "reason": reason}
    with ApiClient(server, api_key) as client:
        result = client.request("DELETE", f"{BASE}/{backup_id}",
                                params={k: v for k, v in params.items() if v is not None})
    show(result, as_json, f"backup {backup_id} deleted")


@app.command("protect")
def protect(backup_id: str = typer.Argument(...),
            reason: str = typer.Option(..., "--reason", help="Why it must be kept."),
            server: str = ServerOption, api_key: str = ApiKeyOption,
            as_json: bool = JsonOption) -> None:
    """Pin a backup: no retention rule, cleanup or plain delete removes it."""
    with ApiClient(server, api_key) as client:
        result = client.post(f"/api/v1/backups/{backup_id}/protect", {"reason": reason})
    show(result, as_json, f"backup {result['_id']} protected: {result['protected_reason']}")


@app.command("unprotect")
def unprotect(backup_id: str = typer.Argument(...),
              reason: str | None = typer.Option(None, "--reason"),
              server: str = ServerOption, api_key: str = ApiKeyOption,
              as_json: bool = JsonOption) -> None:
    """Lift a backup's protection (admin)."""
    with ApiClient(server, api_key) as client:
        result = client.post(f"/api/v1/backups/{backup_id}/unprotect", {"reason": reason})
    show(result, as_json, f"backup {result['_id']} is no longer protected")
