"""``strongbox schedules list|show|create|toggle|delete|run|runs``: schedules over HTTP.

Calls ``/api/v1/schedules`` on a running server (``--server``/``STRONGBOX_URL``,
``--api-key``/``STRONGBOX_API_KEY``). Exit codes: 0 done; 1 the server refused (the
error's code and message on stderr); 2 the server is unreachable.
"""

from __future__ import annotations

from typing import Any

import typer

from strongbox.cli.client import ApiClient, ApiKeyOption, JsonOption, ServerOption, show
from strongbox.cli.console import out, print_json

app = typer.Typer(help="Schedules on a running server: recurring backups, verifications "
                       "and cleanups.", no_args_is_help=True)


def _when(value: Any) -> str:
    return str(value).replace("T", " ")[:19] if value else "-"


def _line(item: dict[str, Any]) -> str:
    state = "enabled" if item["enabled"] else "disabled"
    return (f"{item['_id']}  {item['name']!r}: {item['action']} ({item['type']}) "
            f"{item['cron']} {item['timezone']}, {state}, next run {_when(item.get('next_run'))}")


@app.command("list")
def list_schedules(
    enabled: bool | None = typer.Option(None, "--enabled/--disabled",
                                        help="Only enabled (or disabled) schedules."),
    page: int = typer.Option(1, "--page", min=1),
    size: int = typer.Option(50, "--size", min=1, max=100),
    server: str = ServerOption, api_key: str = ApiKeyOption, as_json: bool = JsonOption,
) -> None:
    """List the tenant's schedules with their next and last runs."""
    with ApiClient(server, api_key) as client:
        answer = client.get("/api/v1/schedules", page=page, size=size,
                            enabled=None if enabled is None else str(enabled).lower())
    if as_json:
        print_json(answer)
        return
    for item in answer["items"]:
        last = (f"; last run {_when(item.get('last_run'))} {item.get('last_status')}"
                if item.get("last_run") else "")
        out.print(f"{_line(item)}{last}; runs {item['successful_runs']} ok, "
                  f"{item['failed_runs']} failed", highlight=False, soft_wrap=True)
    out.print(f"{answer['pagination']['total_items']} schedule(s)", highlight=False)


@app.command("show")
def show_schedule(schedule_id: str, server: str = ServerOption,
                  api_key: str = ApiKeyOption) -> None:
    """Print one schedule as JSON."""
    with ApiClient(server, api_key) as client:
        print_json(client.get(f"/api/v1/schedules/{schedule_id}"))


@app.command("create")
def create_schedule(
    name: str = typer.Argument(..., help="A name unique within the tenant."),
    cron: str | None = typer.Option(None, "--cron", help='e.g. "30 2 * * *" or @daily'),
    frequency: str | None = typer.Option(None, "--frequency",
                                         help="hourly, daily, weekly or monthly"),
    at: str | None = typer.Option(None, "--time", help="HH:MM for --frequency"),
    day: str | None = typer.Option(None, "--day", help="weekly: monday…; monthly: 1-31/last"),
    timezone: str = typer.Option("UTC", "--timezone", help="IANA zone, e.g. Europe/Berlin"),
    action: str = typer.Option("backup", "--action", help="backup, verify or cleanup"),
    backup_type: str = typer.Option("full", "--type",
                                    help="full, incremental, differential or selective"),
    sources: list[str] = typer.Option([], "--source", help="A source id (repeat); default: "
                                                           "every source"),
    disabled: bool = typer.Option(False, "--disabled", help="Create it switched off."),
    keep_last: int | None = typer.Option(None, "--keep-last", min=1,
                                         help="Retention: backups of it to keep"),
    server: str = ServerOption, api_key: str = ApiKeyOption, as_json: bool = JsonOption,
) -> None:
    """Create a schedule (give --cron, or --frequency with --time and --day)."""
    body: dict[str, Any] = {"name": name, "action": action, "type": backup_type,
                            "timezone": timezone, "enabled": not disabled}
    optional = {"cron": cron, "frequency": frequency, "time": at, "day": day,
                "source_ids": sources or None,
                "retention": {"keep_last": keep_last} if keep_last else None}
    body.update({k: v for k, v in optional.items() if v is not None})
    with ApiClient(server, api_key) as client:
        created = client.post("/api/v1/schedules", body)
    show(created, as_json, f"created {_line(created)}")


@app.command("toggle")
def toggle_schedule(
    schedule_id: str,
    enable: bool | None = typer.Option(None, "--enable/--disable",
                                       help="Set the state (default: flip it)."),
    server: str = ServerOption, api_key: str = ApiKeyOption, as_json: bool = JsonOption,
) -> None:
    """Enable or disable a schedule."""
    with ApiClient(server, api_key) as client:
        answer = client.post(f"/api/v1/schedules/{schedule_id}/toggle",
                             {} if enable is None else {"enabled": enable})
    show(answer, as_json, f"{answer['message']}: {_line(answer['schedule'])}")


@app.command("delete")
def delete_schedule(schedule_id: str, server: str = ServerOption,
                    api_key: str = ApiKeyOption, as_json: bool = JsonOption) -> None:
    """Delete a schedule (the backups it made stay)."""
    with ApiClient(server, api_key) as client:
        answer = client.delete(f"/api/v1/schedules/{schedule_id}")
    show(answer, as_json, answer["message"])


@app.command("run")
def run_schedule(schedule_id: str, server: str = ServerOption,
                 api_key: str = ApiKeyOption, as_json: bool = JsonOption) -> None:
    """Run a schedule now (its timetable stays as it is)."""
    with ApiClient(server, api_key) as client:
        answer = client.post(f"/api/v1/schedules/{schedule_id}/run")
    run = answer["run"]
    show(answer, as_json, f"{answer['message']}: run {run['_id']} ({run['status']}), jobs "
         + (", ".join(run["job_ids"]) or "none"))


@app.command("runs")
def schedule_runs(schedule_id: str, size: int = typer.Option(20, "--size", min=1, max=100),
                  server: str = ServerOption, api_key: str = ApiKeyOption,
                  as_json: bool = JsonOption) -> None:
    """A schedule's latest runs."""
    with ApiClient(server, api_key) as client:
        answer = client.get(f"/api/v1/schedules/{schedule_id}/runs", size=size)
    if as_json:
        print_json(answer)
        return
    for run in answer["items"]:
        trigger = run["trigger"] + (" (catch-up)" if run["catch_up"] else "")
        out.print(f"run {run['_id']}: due {_when(run['scheduled_for'])}, {run['status']} "
                  f"({trigger}), started {_when(run.get('started_at'))}, finished "
                  f"{_when(run.get('finished_at'))}"
                  + (f": {run['error']}" if run.get("error") else ""), highlight=False,
                  soft_wrap=True)
