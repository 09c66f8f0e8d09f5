"""``strongbox jobs list|show|cancel|watch``: every kind of long-running operation on a
running server (backups, restores, verifications, cleanups, DR tests, snapshot restores,
uploads), over HTTP.

Exit codes: 0 done; 1 an API error (unknown job, already finished, not cancellable);
2 server unreachable; 4 the watched job ended without completing (failed or cancelled),
or ``cancel`` could only ask a running job to stop; 5 ``watch`` timed out.
"""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from strongbox.cli.client import ApiClient, ApiKeyOption, JsonOption, ServerOption
from strongbox.cli.console import out, print_json

BASE = "/api/v1/jobs"
EXIT_NOT_COMPLETED = 4
EXIT_TIMEOUT = 5
FINAL = ("completed", "failed")

app = typer.Typer(help="Jobs of every kind: list, show, cancel, watch with a progress bar.",
                  no_args_is_help=True)


def _client(server: str, api_key: str) -> ApiClient:
    return ApiClient(server, api_key)


def _state(job: dict[str, Any]) -> str:
    """``failed`` alone hides a cancellation: say it."""
    if job.get("cancelled"):
        return "cancelled"
    if job.get("cancel_requested") and job["status"] not in FINAL:
        return "cancelling"
    return str(job["status"])


def _line(job: dict[str, Any]) -> str:
    progress = job.get("progress") or {}
    text = f"{job['job_id']}  {job['kind']:<16} {_state(job):<11} " \
           f"{progress.get('percentage', 0):5.1f}%"
    step = progress.get("current_step")
    if step:
        text += f"  {step}"
    error = job.get("error")
    if error:
        text += f"  [{error['code']}] {error['message']}"
    return text


@app.command("list")
def list_jobs(active: bool = typer.Option(False, "--active", help="Only pending and running."),
              kind: str | None = typer.Option(None, "--kind", "-k",
                                              help="backup, restore, verify, cleanup, ..."),
              status: str | None = typer.Option(None, "--status",
                                                help="pending, in_progress, completed, "
                                                     "failed, cancelled"),
              page: int = typer.Option(1, "--page", min=1),
              size: int = typer.Option(20, "--size", min=1, max=100),
              server: str = ServerOption, api_key: str = ApiKeyOption,
              as_json: bool = JsonOption) -> None:
    """The tenant's jobs, newest first."""
    with _client(server, api_key) as client:
        result = client.get(BASE, page=page, size=size, kind=kind, status=status,
                            active=str(active).lower() if active else None)
    if as_json:
        print_json(result)
        return
    table = Table(box=None)
    table.add_column("job", no_wrap=True, min_width=36)  # ids are copied: never cut them
    for name in ("kind", "status", "progress", "step", "created"):
        table.add_column(name)
    for job in result["items"]:
        progress = job.get("progress") or {}
        table.add_row(job["job_id"], job["kind"], _state(job),
                      f"{progress.get('percentage', 0):.1f}%",
                      str(progress.get("current_step") or ""), job["created_at"][:19])
    out.print(table)
    pagination = result["pagination"]
    out.print(f"page {pagination['current_page']} of {pagination['total_pages']} "
              f"({pagination['total_items']} jobs)", highlight=False)


@app.command("show")
def show_job(job_id: str = typer.Argument(..., help="The job id."),
             server: str = ServerOption, api_key: str = ApiKeyOption,
             as_json: bool = JsonOption) -> None:
    """One job with its progress (percentage, step, items and bytes done, ETA)."""
    with _client(server, api_key) as client:
        job = client.get(f"{BASE}/{job_id}")
    if as_json:
        print_json(job)
        return
    out.print(_line(job), highlight=False)
    progress = job.get("progress") or {}
    for name in ("items_done", "items_total", "bytes_done", "bytes_total",
                 "elapsed_seconds", "eta_seconds"):
        if progress.get(name) is not None:
            out.print(f"  {name}: {progress[name]}", highlight=False)
    for name in ("backup_id", "created_at", "started_at", "completed_at"):
        if job.get(name):
            out.print(f"  {name}: {job[name]}", highlight=False)


@app.command("cancel")
def cancel_job(job_id: str = typer.Argument(..., help="The job id."),
               reason: str | None = typer.Option(None, "--reason",
                                                 help="Why (written to the server log)."),
               server: str = ServerOption, api_key: str = ApiKeyOption,
               as_json: bool = JsonOption) -> None:
    """Cancel a job: a pending one at once, a running one at its next safe point (what
    it wrote is cleaned up or rolled back). Operator role."""
    with _client(server, api_key) as client:
        result = client.post(f"{BASE}/{job_id}/cancel", {"reason": reason} if reason else None)
    if as_json:
        print_json(result)
    else:
        out.print(f"{result['status']}: {result['message']}", highlight=False)
    if result["status"] != "cancelled":
        raise typer.Exit(EXIT_NOT_COMPLETED)


@app.command("watch")
def watch_job(job_id: str = typer.Argument(..., help="The job id."),
              interval: float = typer.Option(1.0, "--interval", min=0.05,
                                             help="Seconds between polls."),
              timeout: float = typer.Option(0.0, "--timeout", min=0.0,
                                            help="Give up after N seconds (0: never)."),
              server: str = ServerOption, api_key: str = ApiKeyOption) -> None:
    """Follow a job with a progress bar until it ends."""
    deadline = time.monotonic() + timeout if timeout else None
    with _client(server, api_key) as client:
        job = _follow(client, job_id, interval, deadline)
    out.print(_line(job), highlight=False)
    if job["status"] not in FINAL:
        raise typer.Exit(EXIT_TIMEOUT)
    if job["status"] != "completed":
        raise typer.Exit(EXIT_NOT_COMPLETED)


def _follow(client: ApiClient, job_id: str, interval: float,
            deadline: float | None) -> dict[str, Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TimeRemainingColumn())
    with RichProgress(*columns, console=out, transient=True) as bar:
        job = client.get(f"{BASE}/{job_id}")
        task = bar.add_task(job["kind"], total=100.0)
        while True:
            progress = job.get("progress") or {}
            step = progress.get("current_step") or _state(job)
            bar.update(task, completed=float(progress.get("percentage", 0.0)),
                       description=f"{job['kind']}: {step}")
            if job["status"] in FINAL or (deadline and time.monotonic() >= deadline):
                return dict(job)
            time.sleep(interval)
            job = client.get(f"{BASE}/{job_id}")
