"""Merge benchmark: one project's 100k-row subtree restored into the live database, new ids.

    python bench/merge_bench.py                                   # 3 x 1000 x 100: 100k
    python bench/merge_bench.py --sessions-per-project 100        # quick run: 10k messages

A demo application database (strongbox.demo.app_database) is generated with three
projects of ``sessions x messages`` each (1000 x 100 by default, so one project's subtree
is 1 project + 1000 sessions + 100,000 messages), backed up with ``backup_sqlite``, and
then the first project is restored from that backup into the *original* database, which
still holds it: ``restore_sqlite`` with mode "selective", on_conflict "rename" and
maintain_ids False, so every row of the subtree gets a new id and every foreign key in it
is rewritten, and the project's unique name gets the "_restored" suffix.

The restore runs in a child process measured with ``os.wait4`` (wall time, CPU, peak RSS;
see measure.py). Afterwards sqlite3 checks that the copy has exactly the original's
sessions and messages under new ids, that the original is untouched, and that
``PRAGMA foreign_key_check`` and ``PRAGMA integrity_check`` are clean.
Target: under 10 s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

from measure import Measurement, log_tail, run_measured
from sqlite_bench import fmt, render_table, verdict
from strongbox.demo.app_database import generate
from strongbox.repository.backend import LocalBackend
from strongbox.repository.repository import Repository
from strongbox.sources.sqlite.backup import backup_sqlite
from strongbox.sources.sqlite.restore import restore_sqlite
from strongbox.sources.sqlite.restore_plan import RestoreRequest

DEFAULT_WORKDIR = Path(__file__).resolve().parent / "work" / "merge"
PASSPHRASE = "strongbox-bench-passphrase"
MIB = 1024 * 1024
TARGET_SECONDS = 10.0


# ---------------------------------------------------------------- the step (child process)


def step_merge(repo_path: Path, db: Path, project_id: str, report: Path) -> None:
    repo = Repository.open(LocalBackend(repo_path), os.environ["STRONGBOX_PASSPHRASE"])
    request = RestoreRequest(mode="selective", selections={"projects": [project_id]},
                             on_conflict="rename", maintain_ids=False)
    result = restore_sqlite(repo, "latest", db, request)
    report.write_text(json.dumps({
        "rows_restored": result.rows_restored, "rows_skipped": result.rows_skipped,
        "rows_failed": result.rows_failed,
        "inserted": {t: c["inserted"] for t, c in result.tables.items() if c["inserted"]},
        "new_project_id": result.id_mappings.get("projects", {}).get(project_id),
        "remapped": {t: len(m) for t, m in result.id_mappings.items()},
    }))


def run_child_step(argv: list[str]) -> int:
    repo_path, db, project_id, report = argv
    step_merge(Path(repo_path), Path(db), project_id, Path(report))
    return 0


# ---------------------------------------------------------------- checks with sqlite3


@dataclass(frozen=True)
class Subtree:
    project_id: str
    name: str
    sessions: int
    messages: int


def subtree(conn: sqlite3.Connection, project_id: str) -> Subtree:
    name = conn.execute("SELECT name FROM projects WHERE id = ?", (project_id,)).fetchone()
    sessions = conn.execute("SELECT count(*) FROM sessions WHERE project_id = ?",
                            (project_id,)).fetchone()[0]
    messages = conn.execute(
        "SELECT count(*) FROM messages WHERE session_id IN "
        "(SELECT id FROM sessions WHERE project_id = ?)", (project_id,)).fetchone()[0]
    return Subtree(project_id, name[0] if name else "", sessions, messages)


def overlapping_ids(conn: sqlite3.Connection, old: str, new: str) -> int:
    """Sessions and messages the copy shares with the original by id (must be none)."""
    sessions = conn.execute(
        "SELECT count(*) FROM sessions a JOIN sessions b ON a.id = b.id "
        "WHERE a.project_id = ? AND b.project_id = ?", (old, new)).fetchone()[0]
    messages = conn.execute(
        "SELECT count(*) FROM messages m JOIN sessions s ON m.session_id = s.id "
        "WHERE s.project_id = ? AND m.id IN (SELECT m2.id FROM messages m2 JOIN sessions s2 "
        "ON m2.session_id = s2.id WHERE s2.project_id = ?)", (new, old)).fetchone()[0]
    return int(sessions) + int(messages)


def check(db: Path, before: Subtree, new_id: str | None, projects_before: int) -> list[str]:
    """What is wrong with the database after the merge (empty: nothing)."""
    if new_id is None:
        return ["the restore reported no new id for the project"]
    conn = sqlite3.connect(db)
    try:
        problems = []
        if new_id == before.project_id:
            problems.append("the project kept its id")
        copy, original = subtree(conn, new_id), subtree(conn, before.project_id)
        if (copy.sessions, copy.messages) != (before.sessions, before.messages):
            problems.append(f"copy has {copy.sessions} sessions, {copy.messages} messages; "
                            f"expected {before.sessions}, {before.messages}")
        if original != before:
            problems.append(f"original changed: {original} != {before}")
        if copy.name != before.name + "_restored":
            problems.append(f"copy is named {copy.name!r}")
        if (shared := overlapping_ids(conn, before.project_id, new_id)) != 0:
            problems.append(f"{shared} rows of the copy share ids with the original")
        projects = conn.execute("SELECT count(*) FROM projects").fetchone()[0]
        if projects != projects_before + 1:
            problems.append(f"{projects} projects, expected {projects_before + 1}")
        if fk := conn.execute("PRAGMA foreign_key_check").fetchall():
            problems.append(f"foreign_key_check: {len(fk)} violations, first {fk[0]}")
        if (integrity := conn.execute("PRAGMA integrity_check").fetchone()[0]) != "ok":
            problems.append(f"integrity_check: {integrity}")
        return problems
    finally:
        conn.close()


# ---------------------------------------------------------------- the run


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGBOX_")}
    return env | {"STRONGBOX_PASSPHRASE": PASSPHRASE}


def prepare(base: Path, args: argparse.Namespace) -> tuple[Path, Path, dict[str, int]]:
    shutil.rmtree(base, ignore_errors=True)
    (base / "logs").mkdir(parents=True)
    db, repo_path = base / "app.db", base / "repo"
    print(f"generating {db}: {args.projects} projects x {args.sessions_per_project} sessions "
          f"x {args.messages_per_session} messages", flush=True)
    counts = generate(db, projects=args.projects, sessions_per_project=args.sessions_per_project,
                      messages_per_session=args.messages_per_session, seed=args.seed)
    repo = Repository.init(LocalBackend(repo_path), PASSPHRASE)
    backup_sqlite(repo, db)
    return db, repo_path, counts


def first_project(db: Path) -> tuple[Subtree, int]:
    conn = sqlite3.connect(db)
    try:
        (project_id,) = conn.execute("SELECT id FROM projects ORDER BY rowid LIMIT 1").fetchone()
        projects = conn.execute("SELECT count(*) FROM projects").fetchone()[0]
        return subtree(conn, project_id), int(projects)
    finally:
        conn.close()


def measure_merge(base: Path, repo_path: Path, db: Path, project_id: str) -> Measurement:
    os.sync()
    argv = [sys.executable, str(Path(__file__).resolve()), "step", str(repo_path), str(db),
            project_id, str(base / "logs" / "merge.json")]
    log = base / "logs" / "merge.log"
    outcome = run_measured(argv, cwd=base, env=child_env(), log_path=log)
    if not outcome.ok:
        print(f"merge failed, exit {outcome.returncode}; see {log}\n{log_tail(log)}",
              file=sys.stderr)
    return outcome


def report(before: Subtree, counts: dict[str, int], outcome: Measurement,
           merge: dict[str, object], problems: list[str], *, heading: str = "",
           step: str = "selective restore, rename, new ids") -> None:
    """The figures and the verdict (postgres_merge_bench.py prints through this too)."""
    rows = 1 + before.sessions + before.messages
    rate = rows / outcome.wall_seconds if outcome.ok and outcome.wall_seconds else None
    print(f"\n{heading}database: {counts}; subtree of project {before.project_id}: 1 "
          f"project, {before.sessions} sessions, {before.messages} messages = {rows} rows")
    print(f"restore report: {json.dumps(merge)}\n")
    print(render_table(
        ["step", "time s", "rows/s", "cpu s", "peak RSS MiB", "check"],
        [[step, fmt(outcome.wall_seconds), fmt(rate, 0),
          fmt(outcome.cpu_seconds), fmt(outcome.peak_rss_bytes / MIB, 1),
          "ok" if outcome.ok and not problems else "FAILED"]]))
    for problem in problems:
        print(f"  problem: {problem}")
    passed = outcome.ok and not problems and outcome.wall_seconds < TARGET_SECONDS
    print("\n" + render_table(["target (strongbox)", "value", "verdict"], [
        [f"{rows}-row subtree merged with remapped ids in < {TARGET_SECONDS:g} s",
         f"{fmt(outcome.wall_seconds)} s", verdict(passed if outcome.ok else None)]]) + "\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=3)
    parser.add_argument("--sessions-per-project", type=int, default=1000)
    parser.add_argument("--messages-per-session", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--keep", action="store_true", help="keep the database and repository")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["step"]:
        return run_child_step(argv[1:])
    args = parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    base = args.workdir.resolve()
    db, repo_path, counts = prepare(base, args)
    before, projects = first_project(db)
    outcome = measure_merge(base, repo_path, db, before.project_id)
    merge_report = base / "logs" / "merge.json"
    merge = json.loads(merge_report.read_text()) if merge_report.exists() else {}
    problems = check(db, before, merge.get("new_project_id"), projects) if outcome.ok else []
    report(before, counts, outcome, merge, problems)
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if outcome.ok and not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
