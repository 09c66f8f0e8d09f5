"""The ``strongbox`` command."""

from __future__ import annotations

import typer

from strongbox import __version__
from strongbox.cli import backups as backups_cli
from strongbox.cli import cleanup as cleanup_cli
from strongbox.cli import db, repo, serve, verify
from strongbox.cli import dr as dr_cli
from strongbox.cli import jobs as jobs_cli
from strongbox.cli import notifications as notifications_cli
from strongbox.cli import policies as policies_cli
from strongbox.cli import schedules as schedules_cli
from strongbox.cli import snapshots as snapshots_cli
from strongbox.cli import status as status_cli

app = typer.Typer(help="Strongbox: backup and recovery for application data.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(repo.app, name="repo")
app.add_typer(cleanup_cli.app, name="cleanup")
app.add_typer(backups_cli.app, name="backups")
app.add_typer(db.app, name="db")
app.command()(serve.serve)
app.add_typer(serve.keys_app, name="keys")
app.add_typer(snapshots_cli.app, name="snapshots")
app.add_typer(status_cli.app, name="status")
app.add_typer(dr_cli.app, name="dr")
app.add_typer(notifications_cli.app, name="notifications")
app.add_typer(schedules_cli.app, name="schedules")
app.add_typer(policies_cli.app, name="policies")
app.add_typer(jobs_cli.app, name="jobs")
app.command(name="verify")(verify.verify)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
