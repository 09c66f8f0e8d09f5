"""``strongbox db ...``: record-aware database backups from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from strongbox.cli.console import out, print_json, progress_bar, run
from strongbox.cli.repo import JsonOpt, PassFileOpt, RepoOpt, open_repository
from strongbox.errors import InvalidRequest
from strongbox.repository.lock import Lock
from strongbox.sources.postgres import backup_postgres, restore_postgres
from strongbox.sources.sqlite.backup import DatabaseFilters, backup_sqlite
from strongbox.sources.sqlite.export import JsonExportReader, export_csv, export_json
from strongbox.sources.sqlite.live import LiveDatabaseReader
from strongbox.sources.sqlite.reader import SnapshotReader
from strongbox.sources.sqlite.restore import restore_from_reader, restore_sqlite
from strongbox.sources.sqlite.restore_plan import (
    RestoreRequest,
    RestoreResult,
    request_for_import,
)
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
def backup(database: str = typer.Argument(..., help="SQLite database file, or a PostgreSQL "
                                                   "URL / 'host=... dbname=...' DSN."),
           schema: str = typer.Option("public", help="PostgreSQL schema to back up."),
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
           row_streams: bool = typer.Option(
               False, "--row-streams", help="SQLite full backups: also store every table "
                                            "as a row stream next to the page copy (slower; "
                                            "rows are otherwise read from the page copy)."),
           json: bool = JsonOpt) -> None:
    """Back up a database (all of it, or for SQLite a selection of rows) as one snapshot."""
    def body() -> None:
        r = open_repository(repo, password_file)
        filters = DatabaseFilters(records=parse_records(select), date_start=since,
                                  date_end=until, min_children=min_messages,
                                  max_children=max_messages, include_tables=include_table,
                                  exclude_tables=exclude_table)
        is_postgres = is_postgres_dsn(database)
        if is_postgres and not filters.is_empty():
            raise InvalidRequest("row filters work on SQLite sources so far; PostgreSQL "
                                 "backups take the whole schema")
        with Lock(r.backend, exclusive=False).acquire(), progress_bar(not json) as progress:
            if is_postgres:
                snap = backup_postgres(r, database, schema=schema, tags=tag, progress=progress)
            else:
                snap = backup_sqlite(r, database, filters=filters, tags=tag,
                                     row_streams=row_streams, progress=progress)
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


ModeOpt = typer.Option("full", "--mode", "-m", help="full, selective or merge.")
ConflictOpt = typer.Option("skip", "--on-conflict",
                           help="skip, overwrite, rename, merge or fail.")


def _request(mode: str, select: list[str], exclude: list[str], table: list[str],
             on_conflict: str, new_ids: bool, suffix: str, dry_run: bool) -> RestoreRequest:
    request = RestoreRequest(mode=mode, selections=parse_records(select),
                             exclude=parse_records(exclude), tables=table or None,
                             on_conflict=on_conflict, maintain_ids=not new_ids,
                             name_suffix=suffix, dry_run=dry_run)
    request.validate()
    return request


def _show(result: RestoreResult, as_json: bool) -> None:
    doc = result.to_dict()
    if as_json:
        print_json(doc)
        return
    plan = result.plan
    verb = "would restore" if result.dry_run else "restored"
    for t in plan.tables:
        out.print(f"{t.table:20} insert {t.insert:>7}  update {t.update:>7}  "
                  f"skip {t.skip:>7}  conflicts {len(t.conflicts)}", highlight=False)
    out.print(f"{verb} {doc.get('rows_restored', 0)} rows", highlight=False)
    for warning in plan.warnings:
        out.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if result.safety_snapshot:
        out.print(f"safety backup of the target: {result.safety_snapshot[:8]}")


@app.command()
def restore(snapshot: str = typer.Argument(..., help="Snapshot id, prefix or 'latest'."),
            target: str = typer.Option(..., "--target", "-t", help="SQLite file to restore into "
                                       "(may be the original), or a PostgreSQL URL / DSN."),
            target_schema: str | None = typer.Option(None, help="PostgreSQL: restore under "
                                                     "this schema name."),
            replace: bool = typer.Option(False, help="PostgreSQL: drop clashing objects "
                                         "first (in the same transaction)."),
            mode: str = ModeOpt, on_conflict: str = ConflictOpt,
            select: list[str] = typer.Option([], "--select", "-s", help="TABLE=KEY to restore "
                                             "with its foreign-key closure (selective)."),
            exclude: list[str] = typer.Option([], "--exclude", help="TABLE=KEY to leave out."),
            table: list[str] = typer.Option([], "--table", help="Only these tables."),
            new_ids: bool = typer.Option(False, "--new-ids", help="Give restored rows new ids "
                                         "(maintain_ids false) and print the mapping."),
            suffix: str = typer.Option("_restored", "--suffix",
                                       help="Name suffix for renamed rows."),
            dry_run: bool = typer.Option(False, "--dry-run", "-n",
                                         help="Plan only; change nothing."),
            repo: str = RepoOpt, password_file: Path | None = PassFileOpt,
            json: bool = JsonOpt) -> None:
    """Restore a database backup: all of it, chosen rows, or merged into live data."""
    def body() -> None:
        r = open_repository(repo, password_file)
        snap = r.load_snapshot(snapshot)
        request = _request(mode, select, exclude, table, on_conflict, new_ids, suffix, dry_run)
        if snap.kind != "postgres" and is_postgres_dsn(target):
            raise InvalidRequest(f"snapshot {snap.short_id} is a {snap.kind} backup; it "
                                 "cannot be restored into PostgreSQL")
        with Lock(r.backend, exclusive=False).acquire(), progress_bar(not json) as progress:
            if snap.kind == "postgres":
                result = restore_postgres(r, snap, target, request, target_schema=target_schema,
                                          replace_objects=replace, progress=progress)
            else:
                result = restore_sqlite(r, snap, target, request, progress)
        _show(result, json)
    run(body)


def is_postgres_dsn(text: str) -> bool:
    """A PostgreSQL URL or libpq ``key=value`` string, as opposed to a SQLite file path."""
    return text.startswith(("postgresql://", "postgres://")) or (
        "dbname=" in text and not Path(text).exists())


@app.command()
def plan(snapshot: str = typer.Argument(...),
         target: str = typer.Option(..., "--target", "-t", help="SQLite file, or a "
                                    "PostgreSQL URL."),
         target_schema: str | None = typer.Option(None, help="PostgreSQL: the schema to "
                                                  "restore into."),
         mode: str = ModeOpt, on_conflict: str = ConflictOpt,
         select: list[str] = typer.Option([], "--select", "-s"),
         exclude: list[str] = typer.Option([], "--exclude"),
         table: list[str] = typer.Option([], "--table"),
         new_ids: bool = typer.Option(False, "--new-ids"),
         suffix: str = typer.Option("_restored", "--suffix"),
         repo: str = RepoOpt, password_file: Path | None = PassFileOpt,
         json: bool = JsonOpt) -> None:
    """Show what a restore would do (insert, update, skip, every conflict); change nothing."""
    restore(snapshot, target, target_schema, False, mode, on_conflict, select, exclude, table,
            new_ids, suffix, True, repo, password_file, json)


@app.command("import")
def import_(file: Path = typer.Argument(..., help="A JSON export (optionally gzip)."),
            target: Path = typer.Option(..., "--target", "-t", help="SQLite file."),
            import_mode: str = typer.Option("insert_only", "--mode",
                                            help="insert_only, update_only, upsert or replace."),
            conflict: str | None = typer.Option(None, "--on-conflict",
                                                help="Override the mode's conflict rule."),
            dry_run: bool = typer.Option(False, "--dry-run", "-n"),
            validate_only: bool = typer.Option(False, "--validate",
                                               help="Only check the file."),
            repo: str = RepoOpt, password_file: Path | None = PassFileOpt,
            json: bool = JsonOpt) -> None:
    """Import an export back: validate, dry-run, execute (a safety backup goes to --repo)."""
    def body() -> None:
        reader = JsonExportReader(file)
        if validate_only:
            counts = {t.name: t.rows for t in reader.tables()}
            doc = {"valid": True, "errors": [], "warnings": [], "detected_format": "json",
                   "tables_found": list(counts), "record_counts": counts,
                   "total_records": sum(counts.values())}
            if json:
                print_json(doc)
            else:
                out.print(f"valid export: {doc['total_records']} records in "
                          f"{len(counts)} tables", highlight=False)
            return
        request = request_for_import(import_mode, conflict, dry_run=dry_run)
        r = open_repository(repo, password_file)
        with Lock(r.backend, exclusive=False).acquire(), progress_bar(not json) as progress:
            result = restore_from_reader(r, reader, target, request, progress)
        _show(result, json)
    run(body)
