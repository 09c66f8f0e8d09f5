"""`strongbox db backup/restore` with a PostgreSQL source, against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.pg_server import PostgresServer


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGBOX_")}
    env.update(STRONGBOX_SCRYPT_N="1024", STRONGBOX_REPOSITORY=str(tmp_path / "repo"),
               STRONGBOX_PASSPHRASE="secret", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-m", "strongbox", *args], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_backup_and_restore_a_postgres_database(tmp_path: Path,
                                                postgres_server: PostgresServer) -> None:
    source = postgres_server.create_database("cli_source")
    target = postgres_server.create_database("cli_target")
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE projects (id serial PRIMARY KEY, name text UNIQUE, "
                     "budget numeric(12,2), meta jsonb)")
        conn.execute("INSERT INTO projects (name, budget, meta) VALUES "
                     "('a', 10.50, '{\"k\": [1, 2]}'), ('b', NULL, NULL)")
    _cli(tmp_path, "repo", "init")
    snap = json.loads(_cli(tmp_path, "db", "backup", source, "--json").stdout)
    assert snap["summary"]["tables"] == {"projects": 2}
    _cli(tmp_path, "db", "restore", snap["snapshot"][:8], "-t", target)
    with psycopg.connect(target) as conn:
        rows = conn.execute("SELECT id, name, budget::text, meta::text FROM projects "
                            "ORDER BY id").fetchall()
        assert rows == [(1, "a", "10.50", '{"k": [1, 2]}'), (2, "b", None, None)]
        assert conn.execute("SELECT nextval('projects_id_seq')").fetchone() == (3,)
