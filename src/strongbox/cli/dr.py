"""``strongbox dr``: disaster recovery on a running server, over HTTP.

``plan`` shows the DR plan (latest backups, measured RPO and RTO, ordered steps,
warnings); ``test`` runs a DR test (``--wait`` follows it); ``points SOURCE`` lists a
source's recovery points; ``preview BACKUP`` shows what recovering it would change;
``recover BACKUP`` recovers a source from a backup (after a pre-recovery backup).

Exit codes: 0 done; 1 an API error (or a refused confirmation); 2 server unreachable;
3 the DR test ran and failed (or, with ``recover --wait``, the restore failed);
4 the DR test job itself failed, was cancelled, or did not end within ``--timeout``.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from strongbox.cli.client import (
    ApiClient,
    ApiKeyOption,
    JsonOption,
    ServerOption,
    poll,
    show,
)
from strongbox.cli.console import err, out, print_json

EXIT_TEST_FAILED = 3
EXIT_JOB_FAILED = 4
RECOVER_TIMEOUT = 3600.0  # the server waits for the pre-recovery backup within the request

app = typer.Typer(help="Disaster recovery: plan, DR tests, recovery points, recovery.",
                  no_args_is_help=True)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


@app.command()
def plan(window_days: int = typer.Option(30, "--window-days", help="RPO history window."),
         server: str = ServerOption, api_key: str = ApiKeyOption,
         as_json: bool = JsonOption) -> None:
    """Show the DR plan: each source's latest backup, measured RPO and RTO, the steps."""
    with ApiClient(server, api_key) as client:
        found = client.get("/api/v1/recovery/plan", window_days=window_days)
    if as_json:
        print_json(found)
        return
    table = Table("#", "source", "kind", "latest backup", "verified", "RPO", "RTO",
                  title="Disaster-recovery plan")
    for item in found["sources"]:
        latest = item.get("latest_backup")
        rto = item["rto"]
        measured = rto.get("measured_seconds")
        rto_text = (_age(measured) + " (tested)" if measured is not None
                    else _age(rto.get("estimated_seconds")) + " (estimate)")
        table.add_row(str(item["order"]), item["source_name"], item["source_kind"],
                      f"{latest['backup_id'][:8]} {latest['created_at'][:19]}" if latest
                      else "none", "yes" if item["latest_is_verified"] else "no",
                      _age(item["rpo"].get("effective_seconds")), rto_text)
    out.print(table)
    summary = found["summary"]
    out.print(f"worst RPO {_age(summary.get('worst_rpo_seconds'))}, total RTO "
              f"{_age(summary.get('total_rto_seconds'))}, ready: "
              f"{'yes' if summary['ready'] else 'no'}", highlight=False)
    for step in found["steps"]:
        out.print(f"{step['order']}. {step['title']}"
                  + (f"  [dim]{step['command']}[/]" if step.get("command") else ""),
                  highlight=False)
    for warning in found["warnings"]:
        out.print(f"[yellow]warning:[/] {warning}", highlight=False)


@app.command("test")
def run_test(wait: bool = typer.Option(False, "--wait", help="Wait for the result."),
             timeout: float = typer.Option(3600.0, "--timeout", help="Seconds to wait."),
             server: str = ServerOption, api_key: str = ApiKeyOption,
             as_json: bool = JsonOption) -> None:
    """Run a DR test: restore every source's latest backup into scratch and verify it."""
    with ApiClient(server, api_key) as client:
        started = client.post("/api/v1/recovery/test")
        if not wait:
            show(started, as_json, f"DR test {started['test_id']} started "
                 f"(job {started['job_id']})")
            return
        result = _follow_test(client, str(started["test_id"]), timeout)
    raise typer.Exit(_report_test(result, as_json))


def _follow_test(client: ApiClient, test_id: str, timeout: float) -> dict[str, Any]:
    found = poll(client, f"/api/v1/recovery/tests/{test_id}", timeout,
                 done=("completed", "failed", "cancelled"),
                 progress_of=lambda body: (body.get("job") or {}).get("progress"))
    if found is None:
        err.print(f"DR test {test_id} still running after {timeout:.0f}s", highlight=False)
        raise typer.Exit(EXIT_JOB_FAILED)
    return found


def _report_test(result: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print_json(result)
    if result["status"] != "completed":
        error = result.get("error") or {}
        if not as_json:
            out.print(f"DR test {result['status']}: {error.get('code')}: "
                      f"{error.get('message')}", highlight=False)
        return EXIT_JOB_FAILED
    if not as_json:
        verdict = "[green]passed[/]" if result["passed"] else "[bold red]FAILED[/]"
        out.print(f"DR test {result['test_id']} {verdict}: overall RTO "
                  f"{result['duration_seconds']:.2f}s")
        for item in result["sources"]:
            seconds = item.get("duration_seconds")
            timing = f"{seconds:.2f}s" if seconds is not None else "-"
            out.print(f"  {item['status']:>7}  {item['source_name']} ({item['source_kind']})"
                      f"  RTO {timing}" + (f"  {item['reason']}" if item.get("reason") else ""),
                      highlight=False)
            for check in item["checks"]:
                mark = "ok" if check["ok"] else "FAILED"
                out.print(f"           {mark:>6} {check['name']}: {check['detail']}",
                          highlight=False)
            if item["damaged"]:
                out.print("           damaged: " + ", ".join(item["damaged"]), highlight=False)
    return 0 if result["passed"] else EXIT_TEST_FAILED


def _source_id(client: ApiClient, source: str) -> str:
    """A source id, or the id of the tenant's source of that name."""
    listing = client.get("/api/v1/sources")
    for item in listing["items"]:
        if source in (item["_id"], item["name"]):
            return str(item["_id"])
    return source  # let the server answer SOURCE_NOT_FOUND


@app.command()
def points(source: str = typer.Argument(..., help="Source id or name."),
           page: int = typer.Option(1, "--page"), size: int = typer.Option(20, "--size"),
           server: str = ServerOption, api_key: str = ApiKeyOption,
           as_json: bool = JsonOption) -> None:
    """List a source's recovery points (restorable backups), newest first."""
    with ApiClient(server, api_key) as client:
        found = client.get("/api/v1/recovery/recovery-points",
                           source_id=_source_id(client, source), page=page, size=size)
    if as_json:
        print_json(found)
        return
    table = Table("backup", "created", "type", "size", "verified", "name",
                  title=f"Recovery points ({found['pagination']['total_items']})")
    for item in found["items"]:
        table.add_row(item["backup_id"], item["created_at"][:19], item["type"],
                      str(item["size_bytes"]), item["verification_status"], item["name"])
    out.print(table)


@app.command()
def preview(backup_id: str = typer.Argument(..., help="The backup to recover from."),
            server: str = ServerOption, api_key: str = ApiKeyOption,
            as_json: bool = JsonOption) -> None:
    """Show what recovering BACKUP over its source now would replace and lose."""
    with ApiClient(server, api_key) as client:
        found = client.get(f"/api/v1/recovery/preview/{backup_id}")
    if as_json:
        print_json(found)
    else:
        _print_preview(found)


def _print_preview(found: dict[str, Any]) -> None:
    impact = found["impact_analysis"]
    out.print(f"recover {found['source_kind']} source {found['source_name']!r} from backup "
              f"{found['backup_name']!r} ({found['backup_id']}, {found['backup_created_at']})",
              highlight=False)
    out.print(f"estimated duration {impact['estimated_downtime']} "
              f"({impact['estimate_basis']}); data loss risk {impact['data_loss_risk']}; "
              f"{impact['newer_items']} item(s) newer than the backup", highlight=False)
    for table in impact.get("tables") or []:
        out.print(f"  table {table['name']}: now {table.get('current_rows', '-')}, backup "
                  f"{table.get('backup_rows', '-')}, added since "
                  f"{table.get('added_since', '-')}, changed since "
                  f"{table.get('changed_since', '-')}, deleted since "
                  f"{table.get('deleted_since', '-')}", highlight=False)
    files = impact.get("files")
    if files:
        out.print(f"  files: {files['added']} written back, {files['changed']} replaced, "
                  f"{files['removed']} not in the backup, {files['unchanged']} unchanged",
                  highlight=False)
    for warning in found["warnings"]:
        out.print(f"[yellow]warning:[/] {warning}", highlight=False)
    out.print(f"confirmation text: {found['confirmation_text']}", highlight=False)


@app.command()
def recover(backup_id: str = typer.Argument(..., help="The backup to recover from."),
            yes: bool = typer.Option(False, "--yes", help="Confirm without asking."),
            snapshot: bool = typer.Option(True, "--snapshot/--no-snapshot",
                                          help="Take a pre-recovery backup first."),
            reason: str | None = typer.Option(None, "--reason", help="Why (recorded)."),
            wait: bool = typer.Option(False, "--wait", help="Wait for the restore job."),
            timeout: float = typer.Option(3600.0, "--timeout", help="Seconds to wait."),
            server: str = ServerOption, api_key: str = ApiKeyOption,
            as_json: bool = JsonOption) -> None:
    """Recover a source from BACKUP: a pre-recovery backup, then a full restore."""
    with ApiClient(server, api_key, timeout=RECOVER_TIMEOUT) as client:
        found = client.get(f"/api/v1/recovery/preview/{backup_id}")
        if not yes:
            _print_preview(found)
            if not typer.confirm("Replace the source with this backup?", default=False):
                err.print("recovery not confirmed: nothing was changed", highlight=False)
                raise typer.Exit(1)
        started = client.post("/api/v1/recovery/initiate", {
            "backup_id": found["backup_id"], "recovery_type": "full", "confirmation": True,
            "confirmation_text": found["confirmation_text"],
            "create_pre_recovery_snapshot": snapshot, "reason": reason})
        if not wait:
            show(started, as_json, f"recovery started: restore job {started['restore_job_id']}"
                 f"; pre-recovery backup {started.get('pre_recovery_snapshot_id')}")
            return
        status = _follow_restore(client, str(started["restore_job_id"]), timeout)
    if as_json:
        print_json({"recovery": started, "restore": status})
    elif status["status"] == "completed":
        out.print(f"recovered from backup {started['backup_id']}; pre-recovery backup "
                  f"{started.get('pre_recovery_snapshot_id')}", highlight=False)
    else:
        out.print(f"the restore failed: {status.get('errors')}", highlight=False)
    raise typer.Exit(0 if status["status"] == "completed" else EXIT_TEST_FAILED)


def _follow_restore(client: ApiClient, job_id: str, timeout: float) -> dict[str, Any]:
    status = poll(client, f"/api/v1/restore/jobs/{job_id}", timeout)
    if status is None:
        err.print(f"restore job {job_id} still running after {timeout:.0f}s",
                  highlight=False)
        raise typer.Exit(EXIT_JOB_FAILED)
    return status
