"""Connecting to PostgreSQL: DSNs without their secrets, and sessions whose text is portable.

Rows are stored in PostgreSQL's text form, so the session settings that shape that text
(dates, intervals, floats, bytea, time zone, encoding) are fixed here, the same for the
backup that writes it and the restore that reads it back. Otherwise a server configured
for ``DateStyle = 'SQL, DMY'`` could write dates another session reads as month-first.
"""

from __future__ import annotations

import glob
import os
import re
import shutil

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from strongbox.errors import InvalidRequest, SourceError

# Values PostgreSQL itself (and pg_dump) uses for output that every session reads back.
TEXT_SETTINGS = {
    "client_encoding": "UTF8",
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "extra_float_digits": "3",  # shortest exact float text, as pg_dump asks for
    "bytea_output": "hex",
    "xmloption": "content",
}

MAX_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL silently truncates longer names


def split_password(dsn: str) -> tuple[str, str | None]:
    """The DSN as a conninfo string without its password, and the password.

    The password must never reach a stored snapshot, and is handed to ``pg_dump`` through
    its environment rather than its command line, where ``ps`` would show it.
    """
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise InvalidRequest(f"not a valid PostgreSQL connection string: {exc}") from exc
    password = params.pop("password", None)
    return make_conninfo("", **params), None if password is None else str(password)


def connect(dsn: str, *, autocommit: bool = False) -> psycopg.Connection:
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.Error as exc:
        safe, _ = split_password(dsn)
        raise SourceError(f"cannot connect to PostgreSQL ({safe}): {exc}") from exc
    # Set outside any transaction, so the settings hold for the whole session.
    for name, value in TEXT_SETTINGS.items():
        conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
    conn.autocommit = autocommit
    return conn


def quoted(conn: psycopg.Connection, *names: str) -> str:
    """``names`` as one (qualified) SQL identifier, quoted where PostgreSQL needs it."""
    return sql.Identifier(*names).as_string(conn)


def check_identifier(name: str, what: str) -> str:
    if not name or len(name.encode()) > MAX_IDENTIFIER_BYTES or "\0" in name:
        raise InvalidRequest(f"{what} {name!r} is not a valid PostgreSQL name "
                             f"(1 to {MAX_IDENTIFIER_BYTES} bytes)")
    return name


def find_pg_dump() -> str:
    """``pg_dump`` from PATH, else the newest one Debian's packages installed."""
    found = shutil.which("pg_dump")
    if found:
        return found
    installed = glob.glob("/usr/lib/postgresql/*/bin/pg_dump")
    if not installed:
        raise SourceError("pg_dump is not installed (Debian package postgresql-client)")
    return max(installed, key=lambda p: int(re.sub(r"\D", "", p.split("/")[4]) or 0))


def pg_dump_env(password: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    return env
