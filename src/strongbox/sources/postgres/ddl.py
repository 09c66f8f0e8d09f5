"""The schema's DDL, written by pg_dump from the backup's own snapshot.

pg_dump knows every object kind of every server version; writing that by hand would be
the part most likely to be wrong. It runs twice on the exported snapshot the backup holds
open, so the DDL describes exactly the rows stored beside it:

``pre-data``   types, functions, tables, sequences, defaults, views: what rows go into
``post-data``  primary keys, unique and foreign-key constraints, indexes, triggers

A restore loads the rows between the two, as pg_restore does: indexes are built once,
foreign keys are checked once over all rows, and triggers do not fire on restored rows.
"""

from __future__ import annotations

import re
import subprocess

from strongbox.errors import SourceError
from strongbox.sources.postgres.connection import find_pg_dump, pg_dump_env

SECTIONS = ("pre-data", "post-data")

# pg_dump 15.14 and later fence plain output with psql meta-commands holding a random key
# (CVE-2025-8714). They only guard psql; a restore runs the SQL through a driver.
_RESTRICT = re.compile(r"^\\restrict (\S+)$", re.MULTILINE)

# pg_dump heads every object with such a comment. The schema's own CREATE SCHEMA is taken
# out at restore time, where the restore has created (or renamed) the schema itself.
_CREATE_SCHEMA = re.compile(
    r"^(--\n-- Name: [^\n]*; Type: SCHEMA; Schema: -; Owner: [^\n]*\n--\n\n)"
    r"CREATE SCHEMA [^\n]*;\n", re.MULTILINE)


def schema_pattern(schema: str) -> str:
    """A pg_dump ``--schema`` pattern matching exactly ``schema``.

    Inside double quotes pg_dump takes every character literally (no case folding, no
    wildcards), and a double quote is written twice.
    """
    return '"' + schema.replace('"', '""') + '"'


def dump_section(conninfo: str, password: str | None, snapshot_id: str, schema: str,
                 section: str) -> str:
    """One section of the schema's DDL as of ``snapshot_id``, ready to run through a driver."""
    args = [find_pg_dump(), "--schema-only", f"--section={section}", "--no-owner",
            "--no-privileges", "--no-password", f"--snapshot={snapshot_id}",
            f"--schema={schema_pattern(schema)}", f"--dbname={conninfo}"]
    done = subprocess.run(args, capture_output=True, text=True, env=pg_dump_env(password),
                          check=False)
    if done.returncode != 0:
        raise SourceError(f"pg_dump failed for schema {schema!r}: {done.stderr.strip()}")
    return without_restrict_fence(done.stdout)


def without_restrict_fence(ddl: str) -> str:
    match = _RESTRICT.search(ddl)
    if match is None:
        return ddl
    key = re.escape(match.group(1))
    return re.sub(rf"^\\(un)?restrict {key}\n?", "", ddl, flags=re.MULTILINE)


def without_create_schema(ddl: str) -> str:
    return _CREATE_SCHEMA.sub(r"\1", ddl)
