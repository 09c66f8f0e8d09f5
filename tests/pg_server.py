"""A real, throwaway PostgreSQL server for the tests, from the Debian package.

``running_postgres()`` runs ``initdb`` into a fresh temporary directory, starts the server
on 127.0.0.1 (and a private Unix socket directory) on a free port, waits until it accepts
connections and stops it afterwards. Password authentication (SCRAM) is on, so tests
exercise DSNs that carry a password, as a user's would.

PostgreSQL refuses to run as root, so under root the server runs as the ``postgres``
system user (which the Debian package creates) and owns the temporary directory.

Test modules use it with ``pytest_plugins = ("tests.pg_server",)`` and the session-scoped
``postgres_server`` fixture. Missing binaries fail the tests, never skip them: a skipped
database test looks like a passing one.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BIN_GLOB = "/usr/lib/postgresql/*/bin"
SERVER_USER = "postgres"  # the system user the Debian package creates
SUPERUSER = "strongbox"
START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    bin_dir: Path

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string for ``dbname``, password included."""
        return (f"host={self.host} port={self.port} user={self.user} "
                f"password={self.password} dbname={dbname}")

    def create_database(self, name: str) -> str:
        """Create an empty database and return its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)


def find_bin_dir() -> Path | None:
    """The newest installed server's bin directory (Debian keeps one per major version)."""
    candidates = [Path(p) for p in Path("/").glob(BIN_GLOB.lstrip("/"))
                  if (Path(p) / "initdb").is_file() and (Path(p) / "pg_ctl").is_file()]
    if not candidates:
        return None
    return max(candidates, key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> dict[str, Any]:
    """subprocess arguments that drop root privileges to the server user, if we are root."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        pytest.fail(f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL "
                    "as: run scripts/install --test")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _chown_tree(path: Path) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(SERVER_USER)
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, entry.pw_uid, entry.pw_gid)


def _run(args: list[str], cwd: Path, what: str) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False,
                          **_run_as())
    if done.returncode != 0:
        pytest.fail(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _init_cluster(bin_dir: Path, base: Path, password: str) -> Path:
    data = base / "data"
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    _chown_tree(base)
    _run([str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER,
          "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-locale",
          "--no-sync"], base, "initdb")
    pwfile.unlink()
    return data


def _start(bin_dir: Path, base: Path, data: Path) -> int:
    """Start the server on a free port; returns the port. Retries if the port got taken."""
    sockets = base / "sock"
    sockets.mkdir(exist_ok=True)
    _chown_tree(sockets)
    log = base / "server.log"
    for _ in range(START_ATTEMPTS):
        port = _free_port()
        # fsync off: the data is thrown away after the session, and syncing is slow.
        options = f"-k {sockets} -h 127.0.0.1 -p {port} -c fsync=off"
        done = subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
             "-o", options, "start"],
            cwd=base, capture_output=True, text=True, check=False, **_run_as())
        if done.returncode == 0:
            return port
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    pytest.fail(f"PostgreSQL did not start:\n{done.stdout}\n{done.stderr}\n{tail}")


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.fail(f"PostgreSQL server binaries not found ({BIN_GLOB}/initdb): "
                    "run scripts/install --test")
    # Not pytest's tmp_path: its parents are private to root, and the server user must
    # reach its own data directory.
    base = Path(tempfile.mkdtemp(prefix="strongbox-pg-"))
    try:
        password = secrets.token_urlsafe(16)
        data = _init_cluster(bin_dir, base, password)
        port = _start(bin_dir, base, data)
        try:
            yield PostgresServer("127.0.0.1", port, SUPERUSER, password, bin_dir)
        finally:
            subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                            "stop"], cwd=base, capture_output=True, check=False, **_run_as())
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole test session."""
    with running_postgres() as server:
        yield server
