"""Seed 002 table export: JSON (lossless) and CSV, from backups and live databases."""

from __future__ import annotations

import csv
import gzip
import sqlite3
from pathlib import Path

from strongbox.demo.app_database import generate
from strongbox.repository.repository import Repository
from strongbox.sources.sqlite.backup import DatabaseFilters, backup_sqlite
from strongbox.sources.sqlite.codec import InvalidText
from strongbox.sources.sqlite.export import JsonExportReader, export_csv, export_json
from strongbox.sources.sqlite.live import LiveDatabaseReader
from strongbox.sources.sqlite.reader import SnapshotReader
from strongbox.sources.sqlite.selection import select_closure


def _odd_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (a, b, c)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [
        (None, 2**63 - 1, float("inf")),
        (b"\x00\xff", -(2**63), -0.0),
        ("text with \\ backslash", 1.5, "ünïcødé"),
    ])
    conn.execute("INSERT INTO t VALUES (CAST(x'fffe' AS TEXT), 1, 2)")
    conn.commit()
    conn.close()


def test_json_export_of_a_backup_reads_back_losslessly(tmp_path: Path, repo: Repository) -> None:
    db = tmp_path / "odd.db"
    _odd_database(db)
    snap = backup_sqlite(repo, db)
    out = tmp_path / "export.json"
    result = export_json(SnapshotReader(repo, snap), out)
    assert result.table_counts == {"t": 4}
    back = JsonExportReader(out)
    rows = list(back.rows("t"))
    assert rows[0][1:] == (None, 2**63 - 1, float("inf"))  # rowid first
    assert rows[1][1] == b"\x00\xff" and str(rows[1][3]) == "-0.0"
    assert rows[3][1] == InvalidText(b"\xff\xfe")
    assert [t.name for t in back.tables()] == ["t"]


def test_gzip_json_export_of_a_live_selection(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    generate(db, projects=3, sessions_per_project=2, messages_per_session=3)
    conn = sqlite3.connect(db)
    project = conn.execute("SELECT id FROM projects ORDER BY id LIMIT 1").fetchone()[0]
    reader = LiveDatabaseReader(db)
    reader.selection = select_closure(reader.conn, reader.graph(), {"projects": [project]})
    out = tmp_path / "p.json.gz"
    result = export_json(reader, out, compress=True)
    with gzip.open(out) as fh:
        assert fh.read(2) == b'{"'
    assert result.table_counts == {"projects": 1, "sessions": 2, "messages": 6}
    back = JsonExportReader(out)
    sessions = {r[0] for r in back.rows("sessions")}
    expected = {r[0] for r in conn.execute("SELECT id FROM sessions WHERE project_id = ?",
                                           (project,))}
    assert sessions == expected


def test_csv_export_writes_one_file_per_table(tmp_path: Path, repo: Repository) -> None:
    db = tmp_path / "app.db"
    generate(db, projects=2, sessions_per_project=2, messages_per_session=2)
    snap = backup_sqlite(repo, db, filters=DatabaseFilters(include_tables=["projects",
                                                                          "sessions"]))
    result = export_csv(SnapshotReader(repo, snap), tmp_path / "csv")
    assert sorted(Path(f).name for f in result.files) == ["projects.csv", "sessions.csv"]
    with open(tmp_path / "csv" / "projects.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", "name", "description", "created_at", "updated_at"]
    assert len(rows) == 3
