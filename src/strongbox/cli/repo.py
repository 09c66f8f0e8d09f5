"""``strongbox repo ...``: the file-backup engine from the command line."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.table import Table

from strongbox.cli.console import out, print_json, progress_bar, run
from strongbox.errors import InvalidRequest
from strongbox.repository.backend import Backend, open_backend
from strongbox.repository.checker import check_repository
from strongbox.repository.diff import diff_trees
from strongbox.repository.lock import Lock, remove_stale_locks
from strongbox.repository.prune import prune as prune_repository
from strongbox.repository.repository import Repository, needs_passphrase
from strongbox.repository.retention import (
    RetentionPolicy,
    SnapshotRef,
    apply_policy,
    parse_duration,
)
from strongbox.sources.files.archiver import backup_files
from strongbox.sources.files.restorer import restore_files

app = typer.Typer(help="Deduplicated, compressed, encrypted file backups.", no_args_is_help=True)

RepoOpt = typer.Option(..., "--repo", "-r", envvar="STRONGBOX_REPOSITORY",
                       help="Repository location (a local path).")
PassFileOpt = typer.Option(None, "--password-file", envvar="STRONGBOX_PASSPHRASE_FILE",
                           help="Read the passphrase from this file.")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _passphrase(password_file: Path | None, *, confirm: bool = False) -> str:
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise InvalidRequest(f"cannot read password file: {exc.strerror}") from exc
    env = os.environ.get("STRONGBOX_PASSPHRASE")
    if env is not None:
        return env
    if not os.isatty(0):
        raise InvalidRequest("no passphrase: set STRONGBOX_PASSPHRASE or --password-file")
    return str(typer.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm))


def open_repository(repo: str, password_file: Path | None) -> Repository:
    backend = open_backend(repo)
    secret = _passphrase(password_file) if needs_passphrase(backend) else None
    return Repository.open(backend, secret)


def _shared_lock(backend: Backend) -> Lock:
    return Lock(backend, exclusive=False).acquire()


@app.command()
def init(repo: str = RepoOpt, password_file: Path | None = PassFileOpt,
         no_encryption: bool = typer.Option(False, "--no-encryption",
                                            help="Store data unencrypted (still checksummed)."),
         compression: int = typer.Option(3, min=0, max=19, help="zstd level, 0 = off."),
         chunk_size_kib: int = typer.Option(1024, help="Average chunk size in KiB."),
         json: bool = JsonOpt) -> None:
    """Create a new repository."""
    def body() -> None:
        secret = None if no_encryption else _passphrase(password_file, confirm=True)
        r = Repository.init(open_backend(repo), secret, compression_level=compression,
                            chunk_avg=chunk_size_kib * 1024)
        if json:
            print_json({"id": r.config.id, "location": r.backend.location,
                        "encrypted": r.config.encrypted})
        else:
            out.print(f"created repository {r.config.id[:8]} at {r.backend.location}")
    run(body)


@app.command()
def backup(paths: list[Path] = typer.Argument(..., help="Files and folders to back up."),
           repo: str = RepoOpt, password_file: Path | None = PassFileOpt,
           include: list[str] = typer.Option([], "--include", "-i", help="Glob to include."),
           exclude: list[str] = typer.Option([], "--exclude", "-e", help="Glob to exclude."),
           tag: list[str] = typer.Option([], "--tag", help="Tag the snapshot."),
           force: bool = typer.Option(False, "--force", help="Read every file again."),
           json: bool = JsonOpt) -> None:
    """Back up files and folders as one new snapshot."""
    def body() -> None:
        r = open_repository(repo, password_file)
        with _shared_lock(r.backend), progress_bar(not json) as progress:
            snap = backup_files(r, paths, include=include, exclude=exclude, tags=tag,
                                parent=None if force else "auto", progress=progress)
        if json:
            print_json({"snapshot": snap.id, "summary": snap.summary})
            return
        s = snap.summary
        out.print(f"snapshot [bold]{snap.short_id}[/] saved: {s['files_new']} new, "
                  f"{s['files_changed']} changed, {s['files_unmodified']} unmodified files; "
                  f"{_size(s['bytes_new_stored'])} added to the repository")
        for problem in s.get("errors", []):
            out.print(f"[yellow]warning:[/] {problem}")
    run(body)


@app.command()
def snapshots(repo: str = RepoOpt, password_file: Path | None = PassFileOpt,
              json: bool = JsonOpt) -> None:
    """List snapshots, oldest first."""
    def body() -> None:
        snaps = open_repository(repo, password_file).list_snapshots()
        if json:
            print_json([{"id": s.id, "time": s.time, "hostname": s.hostname, "paths": s.paths,
                         "tags": s.tags, "parent": s.parent, "kind": s.kind,
                         "summary": s.summary} for s in snaps])
            return
        table = Table("ID", "Time", "Host", "Tags", "Paths")
        for s in snaps:
            table.add_row(s.short_id, s.datetime.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                          s.hostname, ",".join(s.tags), "\n".join(s.paths))
        out.print(table)
        out.print(f"{len(snaps)} snapshots")
    run(body)


@app.command("ls")
def list_files(snapshot: str = typer.Argument("latest"), repo: str = RepoOpt,
               password_file: Path | None = PassFileOpt, json: bool = JsonOpt) -> None:
    """List the entries of a snapshot."""
    def body() -> None:
        r = open_repository(repo, password_file)
        snap = r.load_snapshot(snapshot)
        entries = list(r.iter_tree(snap.tree))
        if json:
            print_json([{"path": p, "type": n.type, "size": n.size, "mode": oct(n.mode)}
                        for p, n in entries])
            return
        for path, node in entries:
            out.print(f"{node.type:8} {node.size:>12} {path}", highlight=False)
    run(body)


@app.command()
def restore(snapshot: str = typer.Argument(..., help="Snapshot id, prefix, or 'latest'."),
            target: Path = typer.Option(..., "--target", "-t", help="Folder to restore into."),
            repo: str = RepoOpt, password_file: Path | None = PassFileOpt,
            path: str | None = typer.Option(None, "--path", help="Restore only this sub-path."),
            include: list[str] = typer.Option([], "--include", "-i"),
            exclude: list[str] = typer.Option([], "--exclude", "-e"),
            json: bool = JsonOpt) -> None:
    """Restore a snapshot, a sub-path or a glob selection into a folder."""
    def body() -> None:
        r = open_repository(repo, password_file)
        with _shared_lock(r.backend), progress_bar(not json) as progress:
            snap = r.load_snapshot(snapshot)
            summary = restore_files(r, snap, target, subpath=path, include=include,
                                    exclude=exclude, progress=progress)
        if json:
            print_json({"snapshot": snap.id, "target": str(target), **summary.to_dict()})
        else:
            out.print(f"restored {summary.files} files, {summary.dirs} folders "
                      f"({_size(summary.bytes_written)}) from {snap.short_id} to {target}")
    run(body)


@app.command()
def diff(old: str, new: str, repo: str = RepoOpt, password_file: Path | None = PassFileOpt,
         json: bool = JsonOpt) -> None:
    """Show what changed between two snapshots (+ added, - removed, M modified, m metadata)."""
    def body() -> None:
        r = open_repository(repo, password_file)
        a, b = r.load_snapshot(old), r.load_snapshot(new)
        changes = list(diff_trees(r, a.tree, b.tree))
        if json:
            print_json([c.__dict__ for c in changes])
            return
        for c in changes:
            out.print(f"{c.kind} {c.path}", highlight=False)
        out.print(f"{len(changes)} changes")
    run(body)


@app.command()
def check(repo: str = RepoOpt, password_file: Path | None = PassFileOpt,
          read_data: bool = typer.Option(False, "--read-data",
                                         help="Read and verify every blob."),
          json: bool = JsonOpt) -> None:
    """Check the repository's structure (and with --read-data, every byte of data)."""
    def body() -> None:
        r = open_repository(repo, password_file)
        with progress_bar(not json) as progress:
            report = check_repository(r, read_data=read_data, progress=progress)
        if json:
            print_json(report.to_dict())
        else:
            for w in report.warnings:
                out.print(f"[yellow]warning:[/] {w}", highlight=False)
            for e in report.errors:
                out.print(f"[red]error:[/] {e.message}", highlight=False)
            for blob, where in report.affected.items():
                out.print(f"  damaged blob {blob[:16]} is used by: {', '.join(where)}",
                          highlight=False)
            out.print("no errors were found" if report.ok else
                      f"[bold red]{len(report.errors)} errors found[/]")
        if not report.ok:
            raise SystemExit(1)
    run(body)


@app.command()
def forget(repo: str = RepoOpt, password_file: Path | None = PassFileOpt,
           keep_last: int = typer.Option(0, min=0), keep_hourly: int = typer.Option(0, min=0),
           keep_daily: int = typer.Option(0, min=0), keep_weekly: int = typer.Option(0, min=0),
           keep_monthly: int = typer.Option(0, min=0), keep_yearly: int = typer.Option(0, min=0),
           keep_within: str | None = typer.Option(None, help="Duration such as 1y2m3d."),
           keep_tag: list[str] = typer.Option([], help="Keep snapshots with this tag."),
           snapshot_ids: list[str] = typer.Argument(None, help="Forget these snapshots."),
           dry_run: bool = typer.Option(False, "--dry-run", "-n"),
           prune: bool = typer.Option(False, "--prune", help="Prune right after."),
           json: bool = JsonOpt) -> None:
    """Remove snapshots by policy (or by id), explaining what each rule keeps."""
    def body() -> None:
        r = open_repository(repo, password_file)
        with Lock(r.backend, exclusive=True).acquire():
            snaps = r.list_snapshots()
            if snapshot_ids:
                doomed = [r.load_snapshot(i).id for i in snapshot_ids]
                decisions = [{"id": s.id, "keep": s.id not in doomed, "reasons": []}
                             for s in snaps]
            else:
                policy = RetentionPolicy(
                    keep_last=keep_last, keep_hourly=keep_hourly, keep_daily=keep_daily,
                    keep_weekly=keep_weekly, keep_monthly=keep_monthly, keep_yearly=keep_yearly,
                    keep_within=parse_duration(keep_within) if keep_within else None,
                    keep_tags=frozenset(keep_tag))
                refs = [SnapshotRef(s.id, s.datetime, frozenset(s.tags)) for s in snaps]
                decisions = [{"id": d.snapshot.id, "keep": d.keep, "reasons": d.reasons}
                             for d in apply_policy(refs, policy,
                                                   group_key=_paths_key(snaps))]
            if not dry_run:
                for d in decisions:
                    if not d["keep"]:
                        r.delete_snapshot(str(d["id"]))
        _report_forget(decisions, dry_run, json)
        if prune and not dry_run:
            result = prune_repository(r)
            if not json:
                out.print(f"pruned: {_size(result.to_dict().get('bytes_freed', 0))} freed")
    run(body)


def _paths_key(snaps: list) -> object:  # type: ignore[type-arg]
    paths = {s.id: tuple(sorted(s.paths)) for s in snaps}
    return lambda ref: paths[ref.id]


def _report_forget(decisions: list[dict], dry_run: bool, as_json: bool) -> None:  # type: ignore[type-arg]
    if as_json:
        print_json({"dry_run": dry_run, "decisions": decisions})
        return
    for d in decisions:
        verb = "keep  " if d["keep"] else ("would remove" if dry_run else "remove")
        why = f" ({', '.join(d['reasons'])})" if d["reasons"] else ""
        out.print(f"{verb} {str(d['id'])[:8]}{why}", highlight=False)


@app.command()
def prune(repo: str = RepoOpt, password_file: Path | None = PassFileOpt,
          dry_run: bool = typer.Option(False, "--dry-run", "-n"),
          repack_threshold: float = typer.Option(0.5, min=0.0, max=1.0,
                                                 help="Repack packs less used than this."),
          json: bool = JsonOpt) -> None:
    """Remove data no snapshot needs any more and repack mostly-empty packs."""
    def body() -> None:
        r = open_repository(repo, password_file)
        with progress_bar(not json) as progress:
            result = prune_repository(r, dry_run=dry_run, repack_threshold=repack_threshold,
                                      progress=progress)
        doc = result.to_dict()
        if json:
            print_json(doc)
        else:
            for key, value in doc.items():
                out.print(f"{key}: {value}", highlight=False)
    run(body)


@app.command()
def unlock(repo: str = RepoOpt,
           remove_all: bool = typer.Option(False, "--remove-all",
                                           help="Also remove locks that look alive."),
           json: bool = JsonOpt) -> None:
    """Remove stale locks left by processes that died."""
    def body() -> None:
        removed = remove_stale_locks(open_backend(repo), remove_all=remove_all)
        if json:
            print_json([lk.describe() for lk in removed])
        else:
            out.print(f"removed {len(removed)} locks")
    run(body)


key_app = typer.Typer(help="Manage the passphrases that open the repository.",
                      no_args_is_help=True)
app.add_typer(key_app, name="key")


@key_app.command("list")
def key_list(repo: str = RepoOpt, password_file: Path | None = PassFileOpt,
             json: bool = JsonOpt) -> None:
    """List key slots."""
    def body() -> None:
        keys = open_repository(repo, password_file).list_keys()
        if json:
            print_json([k.__dict__ for k in keys])
            return
        for k in keys:
            out.print(f"{'*' if k.in_use else ' '} {k.id[:12]} {k.label}", highlight=False)
    run(body)


NewPassOpt = typer.Option(None, "--new-password-file",
                          help="File with the new passphrase (else STRONGBOX_NEW_PASSPHRASE "
                               "or a prompt).")


def _new_passphrase(path: Path | None) -> str:
    if path is not None:
        return path.read_text().rstrip("\r\n")
    env = os.environ.get("STRONGBOX_NEW_PASSPHRASE")
    if env is not None:
        return env
    return str(typer.prompt("New passphrase", hide_input=True, confirmation_prompt=True))


@key_app.command("add")
def key_add(repo: str = RepoOpt, password_file: Path | None = PassFileOpt,
            new_password_file: Path | None = NewPassOpt,
            label: str = typer.Option("", help="A note to recognise the key by.")) -> None:
    """Add a passphrase (a new key slot for the same master key; no data is rewritten)."""
    def body() -> None:
        r = open_repository(repo, password_file)
        slot = r.add_key(_new_passphrase(new_password_file), label)
        out.print(f"added key {slot[:12]}")
    run(body)


@key_app.command("remove")
def key_remove(slot: str, repo: str = RepoOpt,
               password_file: Path | None = PassFileOpt) -> None:
    """Remove a key slot (never the last one)."""
    def body() -> None:
        open_repository(repo, password_file).remove_key(slot)
        out.print(f"removed key {slot}")
    run(body)


@key_app.command("passwd")
def key_passwd(repo: str = RepoOpt, password_file: Path | None = PassFileOpt,
               new_password_file: Path | None = NewPassOpt) -> None:
    """Change the passphrase used to open the repository."""
    def body() -> None:
        slot = open_repository(repo, password_file).change_passphrase(
            _new_passphrase(new_password_file))
        out.print(f"passphrase changed (new key {slot[:12]})")
    run(body)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"
