"""``strongbox status`` (health and alerts) and ``strongbox status stats`` (statistics
overview) of a running server, over HTTP.

``strongbox status`` exits 0 when the server is healthy, 5 when it is degraded and 6 when
it is unhealthy, so a cron job or a monitoring check can act on it (1: an API error,
2: the server cannot be reached).
"""

from __future__ import annotations

from typing import Any

import typer

from strongbox.cli.client import ApiClient, ApiKeyOption, JsonOption, ServerOption
from strongbox.cli.console import out, print_json

EXIT_CODES = {"healthy": 0, "degraded": 5, "unhealthy": 6}
COLOURS = {"healthy": "green", "degraded": "yellow", "unhealthy": "red",
           "info": "blue", "warning": "yellow", "critical": "red"}

app = typer.Typer(help="Health, alerts and statistics of a running server.")


@app.callback(invoke_without_command=True)
def status(ctx: typer.Context, server: str = ServerOption,
           api_key: str | None = typer.Option(None, "--api-key", envvar="STRONGBOX_API_KEY",
                                              help="API key (or set STRONGBOX_API_KEY)."),
           as_json: bool = JsonOption) -> None:
    """Show the backup system's health, last backups and alerts."""
    if ctx.invoked_subcommand is not None:
        return  # the subcommand takes its own options
    if not api_key:
        raise typer.BadParameter("give --api-key or set STRONGBOX_API_KEY",
                                 param_hint="--api-key")
    with ApiClient(server, api_key) as client:
        body: dict[str, Any] = client.get("/api/v1/status")
    if as_json:
        print_json(body)
    else:
        _print(body)
    raise typer.Exit(EXIT_CODES.get(body["status"], 0))


def _print(body: dict[str, Any]) -> None:
    overall = body["status"]
    out.print(f"[bold {COLOURS[overall]}]{overall}[/]  (checked {body['checked_at'][:19]})")
    for name, component in body["components"].items():
        extra = ""
        if name == "storage" and component.get("percentage_used") is not None:
            extra = f"  {component['percentage_used']:.1f}% used"
        out.print(f"  {name:<10} {component['status']}{extra}", highlight=False)
    for source in body["sources"]:
        last = source.get("last_successful_backup_at") or "never"
        out.print(f"  source {source['name']!r}: last successful backup {last}",
                  highlight=False)
    for alert in body["alerts"]:
        colour = COLOURS.get(alert["level"], "white")
        out.print(f"  [{colour}]{alert['level']:<8}[/] {alert['code']}: {alert['message']}",
                  highlight=False)


@app.command("stats")
def stats(days: int = typer.Option(30, "--days", help="The window: the last N days."),
          server: str = ServerOption, api_key: str = ApiKeyOption,
          as_json: bool = JsonOption) -> None:
    """Success rate, durations, daily counts and storage growth over the last N days."""
    with ApiClient(server, api_key) as client:
        body: dict[str, Any] = client.get("/api/v1/statistics/overview", days=days)
    if as_json:
        print_json(body)
        return
    summary = body["summary"]
    out.print(f"last {days} day(s): {summary['total_backups']} backups, "
              f"{summary['success_rate']:.1f}% successful, average "
              f"{summary['average_duration_seconds']:.1f}s, growth "
              f"{summary['storage_growth_bytes_per_day']:.0f} B/day", highlight=False)
    for kind, group in body["by_type"].items():
        if group["count"]:
            out.print(f"  {kind:<13} {group['count']:>5} backups  "
                      f"{group['success_rate']:.1f}% ok", highlight=False)
