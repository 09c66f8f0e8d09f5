"""Rows of a full SQLite backup, read from its page copy.

A full backup stores the database once, as its page-level copy: every table is there as
SQLite's own b-tree of typed records (NULL, integers of any size, 64-bit reals, text,
blobs), so storing each table a second time as a row stream would only double the work
and the bytes (see docs/repository-format.md, "Which backups carry row streams").
Restores, previews, exports and verification still want a table as a stream of typed
rows; this module gives them that:
the page copy is written back, verified blob by blob, into a scratch file, and SQLite
itself reads each table from it in key order, exactly as the backup would have streamed it.

The scratch file is made on the first read and removed by :meth:`close` (or when the
object is collected); it needs free space the size of the database in the temporary
directory (``TMPDIR``).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import shutil
import sqlite3
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from strongbox.errors import InsufficientStorage, SourceError
from strongbox.repository.repository import Repository
from strongbox.repository.tree import Node
from strongbox.sources.sqlite.codec import text_factory
from strongbox.sources.sqlite.table_rows import column_values, table_rows

# The node meta that marks a table whose rows live in the page copy, not in a stream.
ROWS_IN_PAGE_COPY = "database.sqlite"


class PageCopyTables:
    """Tables of one page copy, read through a scratch copy of the database."""

    def __init__(self, repo: Repository, page_copy: Node, label: str) -> None:
        self._repo = repo
        self._node = page_copy
        self._label = label
        # Two connections to the scratch copy: TEXT decoded by SQLite in C, and the
        # lossless decoder for a table holding TEXT that is not UTF-8 (see _read).
        self._conns: tuple[sqlite3.Connection, sqlite3.Connection] | None = None
        self._finalizer: weakref.finalize | None = None
        self._lock = threading.Lock()

    def rows(self, table: str, columns: list[str], key: tuple[str, ...]
             ) -> Iterator[tuple[Any, ...]]:
        # A generator of this method keeps this object, and so its scratch file, alive
        # for as long as someone reads the rows, even once the reader that asked is gone.
        yield from self._read(lambda conn: table_rows(conn, table, columns, key))

    def column_values(self, table: str, columns: Sequence[str], key: tuple[str, ...]
                      ) -> Iterator[tuple[Any, ...]]:
        """Only some columns: SQLite reads (and Python decodes) nothing else."""
        yield from self._read(lambda conn: column_values(conn, table, columns, key))

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._conns = None

    def _read(self, query: Callable[[sqlite3.Connection], Iterator[tuple[Any, ...]]]
              ) -> Iterator[tuple[Any, ...]]:
        with self._lock:  # two readers at once must not write the copy twice
            if self._conns is None:
                self._conns = self._materialise()
            fast, lossless = self._conns
        done = 0
        try:
            for row in query(fast):
                yield row
                done += 1
            return
        except sqlite3.OperationalError as exc:
            if "decode" not in str(exc):
                raise
        # TEXT that is not UTF-8 somewhere in this table: read it again, losslessly, from
        # where the fast read stopped (the order is the key's, so the same every time).
        yield from itertools.islice(query(lossless), done, None)

    def _materialise(self) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        directory = Path(tempfile.mkdtemp(prefix="strongbox-pages-"))
        path = directory / "database.sqlite"
        try:
            with open(path, "wb") as out:
                for data in self._repo.read_stream(self._node.content):
                    out.write(data)
            # immutable: nothing else writes this file, so SQLite takes no locks and looks
            # for no -wal file (the copy of a WAL database is complete on its own).
            conns = tuple(sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True,
                                          check_same_thread=False, isolation_level=None)
                          for _ in range(2))
        except OSError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            what = (f"{self._label}: cannot write its page copy to {directory} to read rows "
                    f"from it ({exc.strerror}); TMPDIR needs free space the size of the "
                    "database")
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(what) from exc
            raise SourceError(what) from exc
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        fast, lossless = conns
        lossless.text_factory = text_factory
        self._finalizer = weakref.finalize(self, _remove, conns, directory)
        try:
            fast.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise SourceError(f"{self._label}: the page copy cannot be read ({exc})") from exc
        return fast, lossless


def _remove(conns: tuple[sqlite3.Connection, ...], directory: Path) -> None:
    for conn in conns:
        with contextlib.suppress(sqlite3.Error):
            conn.close()
    shutil.rmtree(directory, ignore_errors=True)
