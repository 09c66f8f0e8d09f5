"""``strongbox verify BACKUP_ID [--deep] [--test-restore] [--wait]``: verify over HTTP.

Starts a ``verify`` job on the server (``POST /api/v1/backups/{id}/verify``); with
``--wait`` follows it (``GET /api/v1/backups/verify/jobs/{job_id}``) and prints every
check. Exit codes: 0 started (or, with ``--wait``, verified clean); 1 an API error;
2 server unreachable; 3 the verification failed (the backup is damaged or could not be
checked); 4 the job itself failed or was cancelled.
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

EXIT_VERIFICATION_FAILED = 3
EXIT_JOB_FAILED = 4


def verify(
    backup_id: str = typer.Argument(..., help="The backup to verify."),
    deep: bool = typer.Option(False, "--deep", help="Read every blob of the backup."),
    test_restore: bool = typer.Option(False, "--test-restore",
                                      help="Also restore into a scratch target and check it."),
    wait: bool = typer.Option(False, "--wait", help="Wait for the result and print it."),
    timeout: float = typer.Option(3600.0, "--timeout", help="Seconds to wait at most."),
    server: str = ServerOption,
    api_key: str = ApiKeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Verify a backup: checksum, metadata, completeness, decryption, decompression
    (--deep: every blob), optionally a test restore."""
    with ApiClient(server, api_key) as client:
        started = client.post(f"/api/v1/backups/{backup_id}/verify",
                              {"deep_verification": deep, "test_restore": test_restore})
        if not wait:
            show(started, as_json, f"verification job {started['job_id']} started "
                 f"({started['message']})")
            return
        status = _follow(client, str(started["job_id"]), timeout)
    raise typer.Exit(_report(status, as_json))


# Standalone use (``python -m``-style embedding, tests); the ``strongbox`` command registers
# :func:`verify` itself as ``strongbox verify``.
app = typer.Typer(help="Verify backups on a running server.", no_args_is_help=True)
app.command()(verify)


def _follow(client: ApiClient, job_id: str, timeout: float) -> dict[str, Any]:
    status = poll(client, f"/api/v1/backups/verify/jobs/{job_id}", timeout,
                  progress_of=lambda body: body.get("progress"))
    if status is None:
        out.print(f"still running after {timeout:.0f}s: job {job_id}", highlight=False)
        raise typer.Exit(EXIT_JOB_FAILED)
    return status


def _report(status: dict[str, Any], as_json: bool) -> int:
    result = status.get("result")
    if as_json:
        print_json(status)
    if status["status"] != "completed" or result is None:
        error = status.get("error") or {}
        if not as_json:
            out.print(f"verification job failed: {error.get('code')}: {error.get('message')}",
                      highlight=False)
        return EXIT_JOB_FAILED
    if not as_json:
        _print_result(result)
    return 0 if result["verified"] else EXIT_VERIFICATION_FAILED


def _print_result(result: dict[str, Any]) -> None:
    verdict = "[green]passed[/]" if result["verified"] else "[bold red]FAILED[/]"
    out.print(f"backup {result['backup_id']}: {result['mode']} verification {verdict} "
              f"in {result['verification_duration_seconds']:.1f}s "
              f"({result['blobs_checked']} of {result['blobs_total']} blobs read)")
    for check in result["checks"]:
        colour = {"passed": "green", "failed": "red", "warning": "yellow"}.get(
            check["status"], "dim")
        out.print(f"  [{colour}]{check['status']:>7}[/]  {check['name']}: {check['detail']}",
                  highlight=False)
    if result["damaged"]:
        out.print("damaged: " + ", ".join(result["damaged"]), highlight=False)
