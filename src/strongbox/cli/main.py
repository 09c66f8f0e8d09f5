"""The ``strongbox`` command."""

from __future__ import annotations

import typer

from strongbox import __version__
from strongbox.cli import db, repo, serve

app = typer.Typer(help="Strongbox: backup and recovery for application data.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(repo.app, name="repo")
app.add_typer(db.app, name="db")
app.command()(serve.serve)
app.add_typer(serve.keys_app, name="keys")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
