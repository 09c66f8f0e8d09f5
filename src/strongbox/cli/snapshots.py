"""``strongbox snapshots ...``: configuration snapshots on a running server, over HTTP.

Exit codes: 0 done; 1 an API error; 2 server unreachable; 4 (with ``--wait``) the
snapshot or restore did not complete.
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
BASE = "/api/v1/snapshots"

app = typer.Typer(help="Configuration snapshots: quick, tagged captures of sources or server "
                       "paths, restored with a pre-restore safety snapshot.",
                  no_args_is_help=True)
WaitOption = typer.Option(False, "--wait", help="Wait until it has finished.")
TimeoutOption = typer.Option(3600.0, "--timeout", help="Seconds to wait at most.")


def _line(snapshot: dict[str, Any]) -> str:
    tags = ",".join(snapshot.get("tags") or []) or "-"
    parts = ", ".join(c["source_name"] for c in snapshot.get("components", []))
    return (f"{snapshot['_id']}  {snapshot['status']:<11} {snapshot['created_at'][:19]}  "
            f"{snapshot['name']}  [{tags}]  {parts}")


def _wait(client: ApiClient, path: str, done: tuple[str, ...], timeout: float
          ) -> dict[str, Any]:
    body = poll(client, path, timeout, done=done)
    if body is None:
        out.print(f"still running after {timeout:.0f}s", highlight=False)
        raise typer.Exit(EXIT_NOT_COMPLETED)
    return body


@app.command("create")
def create(name: str = typer.Argument(..., help="The snapshot's name."),
           source: list[str] = typer.Option([], "--source", "-s",
                                            help="A source id or name (repeatable)."),
           path: list[str] = typer.Option([], "--path", "-p",
                                          help="An absolute server path (admin; repeatable)."),
           tag: list[str] = typer.Option([], "--tag", "-t", help="A tag (repeatable)."),
           description: str | None = typer.Option(None, "--description", "-d"),
           wait: bool = WaitOption, timeout: float = TimeoutOption,
           server: str = ServerOption, api_key: str = ApiKeyOption,
           as_json: bool = JsonOption) -> None:
    """Take a snapshot of sources and/or server paths."""
    with ApiClient(server, api_key) as client:
        created = client.post(BASE, {"name": name, "description": description, "tags": tag,
                                     "sources": source, "paths": path})
        snapshot = created["snapshot"]
        if wait:
            snapshot = _wait(client, f"{BASE}/{created['snapshot_id']}",
                             ("active", "failed", "corrupted", "deleting"), timeout)
    show(snapshot, as_json, _line(snapshot))
    if wait and snapshot["status"] != "active":
        raise typer.Exit(EXIT_NOT_COMPLETED)


@app.command("list")
def list_snapshots(tag: str | None = typer.Option(None, "--tag", "-t", help="Only this tag."),
                   page: int = typer.Option(1, "--page"),
                   size: int = typer.Option(20, "--size"),
                   server: str = ServerOption, api_key: str = ApiKeyOption,
                   as_json: bool = JsonOption) -> None:
    """List snapshots, newest first."""
    with ApiClient(server, api_key) as client:
        found = client.get(BASE, tag=tag, page=page, size=size)
    if as_json:
        print_json(found)
        return
    for snapshot in found["items"]:
        out.print(_line(snapshot), highlight=False)
    paging = found["pagination"]
    out.print(f"{paging['total_items']} snapshot(s); page {paging['current_page']} of "
              f"{max(1, paging['total_pages'])}", highlight=False)


@app.command("show")
def show_snapshot(snapshot_id: str = typer.Argument(...), server: str = ServerOption,
                  api_key: str = ApiKeyOption, as_json: bool = JsonOption) -> None:
    """Show one snapshot and its components."""
    with ApiClient(server, api_key) as client:
        snapshot = client.get(f"{BASE}/{snapshot_id}")
    if as_json:
        print_json(snapshot)
        return
    out.print(_line(snapshot), highlight=False)
    for component in snapshot["components"]:
        where = component.get("target") or component["source_kind"]
        out.print(f"  {component['backup_id']}  {component['status']:<11} "
                  f"{component['source_name']} ({where})", highlight=False)


@app.command("restore")
def restore(snapshot_id: str = typer.Argument(...),
            component: list[str] = typer.Option([], "--component", "-c",
                                                help="Only this source id (repeatable)."),
            no_safety: bool = typer.Option(False, "--no-pre-restore-snapshot",
                                           help="Do not capture the current state first."),
            reason: str | None = typer.Option(None, "--reason"),
            remove_new: bool = typer.Option(False, "--remove-new-files",
                                            help="File trees: also delete what the snapshot "
                                                 "does not hold."),
            wait: bool = WaitOption, timeout: float = TimeoutOption,
            server: str = ServerOption, api_key: str = ApiKeyOption,
            as_json: bool = JsonOption) -> None:
    """Restore a snapshot (after a pre-restore snapshot of the current state)."""
    with ApiClient(server, api_key) as client:
        started = client.post(f"{BASE}/{snapshot_id}/restore", {
            "components": component or None, "create_backup": not no_safety,
            "reason": reason, "remove_new_files": remove_new})
        result: dict[str, Any] = started
        if wait:
            result = _wait(client, started["progress_url"],
                           ("completed", "failed", "cancelled"), timeout)
    pre = started.get("pre_restore_snapshot_id")
    summary = f"restore job {started['restore_job_id']} started" + (
        f"; pre-restore snapshot {pre}" if pre else "")
    if wait:
        summary = f"restore {result['status']}" + (f"; pre-restore snapshot {pre}" if pre
                                                    else "")
        if result.get("error"):
            summary += f": {result['error'].get('message')}"
    show(result, as_json, summary)
    if wait and result["status"] != "completed":
        raise typer.Exit(EXIT_NOT_COMPLETED)


@app.command("delete")
def delete(snapshot_id: str = typer.Argument(...), server: str = ServerOption,
           api_key: str = ApiKeyOption, as_json: bool = JsonOption) -> None:
    """Delete a snapshot (every backup it consists of; admin)."""
    with ApiClient(server, api_key) as client:
        deleted = client.delete(f"{BASE}/{snapshot_id}")
    show(deleted, as_json, deleted["message"])
