"""``strongbox db ...``: record-aware database backups from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from strongbox.cli.console import out, print_json, progress_bar, run
from strongbox.cli.repo import JsonOpt, PassFileOpt, RepoOpt, open_repository
from strongbox.errors import InvalidRequest
from strongbox.repository.lock import Lock
from strongbox.sources.sqlite.backup import DatabaseFilters, backup_sqlite
from strongbox.sources.sqlite.export import export_csv, export_json
from strongbox.sources.sqlite.live import LiveDatabaseReader
from strongbox.sources.sqlite.reader import SnapshotReader
from strongbox.sources.sqlite.selection import select_closure

app = typer.Typer(help="Record-aware database backups: any set of rows, foreign keys followed.",
                  no_args_is_help=True)


def parse_records(values: list[str]) -> dict[str, list[Any]]:
    """``table=key`` pairs (repeatable) into {table: [keys]}."""
    records: dict[str, list[Any]] = {}
    for item in values:
        table, sep, key = item.partition("=")
        if not sep or not table or not key:
            raise InvalidRequest(f"--select wants TABLE=KEY, got {item!r}")
        records.setdefault(table, []).append(int(key) if key.lstrip("-").isdigit() else key)
    return records


@app.command()
def backup(database: Path = typer.Argument(..., help="SQLite database file."),
           repo: str = RepoOpt, password_file: Path | None = PassFileOpt,
           select: list[str] = typer.Option([], "--select", "-s",
                                             help="TABLE=KEY rows to take, with everything "
                                                  "hanging off them (repeatable)."),
           since: str | None = typer.Option(None, help="Rows created at or after (ISO 8601)."),
           until: str | None = typer.Option(None, help="Rows created at or before (ISO 8601)."),
           min_messages: int | None = typer.Option(None, help="Sessions with at least N "
                                                              "messages."),
           max_messages: int | None = typer.Option(None, help="Sessions with at most N "
                                                              "messages."),
           include_table: list[str] = typer.Option([], help="Only tables matching this glob."),
           exclude_table: list[str] = typer.Option([], help="Leave out matching tables."),
           tag: list[str] = typer.Option([], "--tag"),
           json: bool = JsonOpt) -> None:
    """Back up a SQLite database (all of it, or a selection of rows) as one snapshot."""
    def body() -> None:
        r = open_repository(repo, password_file)
        filters = DatabaseFilters(records=parse_records(select), date_start=since,
                                  date_end=until, min_children=min_messages,
                                  max_children=max_messages, include_tables=include_table,
                                  exclude_tables=exclude_table)
        with Lock(r.backend, exclusive=False).acquire(), progress_bar(not json) as progress:
            snap = backup_sqlite(r, database, filters=filters, tags=tag, progress=progress)
        if json:
            print_json({"snapshot": snap.id, "summary": snap.summary})
            return
        tables = ", ".join(f"{t} {n}" for t, n in snap.summary["tables"].items())
        kind = "selective" if snap.summary["selective"] else "full"
        out.print(f"{kind} database snapshot [bold]{snap.short_id}[/] saved: {tables}",
                  highlight=False)
    run(body)


@app.command()
def export(source: str = typer.Argument(..., help="Snapshot id/prefix/'latest', or with "
                                                  "--live a database file."),
           output: Path = typer.Option(..., "--output", "-o",
                                       help="File (json) or folder (csv)."),
           fmt: str = typer.Option("json", "--format", help="json or csv."),
           table: list[str] = typer.Option([], "--table", help="Only these tables."),
           select: list[str] = typer.Option([], "--select", "-s",
                                             help="TABLE=KEY rows (live databases)."),
           live: bool = typer.Option(False, "--live", help="Export a live database file."),
           gzip: bool = typer.Option(False, "--gzip", help="Compress with gzip."),
           repo: str | None = typer.Option(None, "--repo", "-r", envvar="STRONGBOX_REPOSITORY"),
           password_file: Path | None = PassFileOpt, json: bool = JsonOpt) -> None:
    """Export tables of a backup (or a live database) as JSON or CSV."""
    def body() -> None:
        if fmt not in ("json", "csv"):
            raise InvalidRequest("--format must be json or csv")
        reader: Any
        if live:
            reader = LiveDatabaseReader(source)
            if select:
                reader.selection = select_closure(reader.conn, reader.graph(),
                                                  parse_records(select))
        else:
            if not repo:
                raise InvalidRequest("give --repo (or STRONGBOX_REPOSITORY), or --live")
            if select:
                raise InvalidRequest("--select works with --live; back up a selection with "
                                     "`strongbox db backup --select` to export it from a backup")
            r = open_repository(repo, password_file)
            reader = SnapshotReader(r, r.load_snapshot(source))
        tables = table or None
        if fmt == "json":
            result = export_json(reader, output, tables=tables, compress=gzip)
        else:
            result = export_csv(reader, output, tables=tables, compress=gzip)
        if json:
            print_json(result.to_dict())
        else:
            out.print(f"exported {result.record_count} records to {output}", highlight=False)
    run(body)
