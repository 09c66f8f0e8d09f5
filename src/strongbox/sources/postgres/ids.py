"""New values for integer key columns of a PostgreSQL merge restore (``maintain_ids`` false,
or ``rename``), and moving sequences past the values a restore wrote."""

from __future__ import annotations

import psycopg
from psycopg import sql

__all__ = ["KeyAllocator"]


class KeyAllocator:
    """New values for an integer key column.

    With a sequence, a real run takes them with ``nextval`` (safe beside an application
    that inserts too); a dry run must not touch the sequence, which no rollback would put
    back, so it counts from the sequence's position instead, reaching the same values a
    real run would. Both first move past the largest value in the column, in case the
    sequence lags behind it. Without a sequence, values go on from the largest one, as
    SQLite does for rowids.
    """

    def __init__(self, conn: psycopg.Connection, schema: str, table: str, column: str,
                 seq: int | None, *, simulate: bool) -> None:
        self.conn, self.simulate = conn, simulate
        self.seq = None if seq is None else str(seq)
        self.table = sql.Identifier(schema, table)
        self.column = sql.Identifier(column)
        self.pool: list[str] = []
        self.next: int | None = None
        self.increment = 1

    def _position(self) -> tuple[int, int]:
        """The value nextval would return now, and the increment."""
        row = self.conn.execute(
            "SELECT pg_catalog.pg_sequence_last_value(s.seqrelid), s.seqstart, "
            "s.seqincrement FROM pg_catalog.pg_sequence s WHERE s.seqrelid = %s::regclass",
            (self.seq,)).fetchone()
        assert row is not None
        last, start, increment = row
        return (start if last is None else last + increment), increment

    def _largest(self) -> int | None:
        row = self.conn.execute(sql.SQL("SELECT max({}) FROM {}").format(
            self.column, self.table)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def move_past_max(self) -> None:
        """Real runs: make nextval return more than any value in the column."""
        if self.seq is None:
            return
        largest = self._largest()
        position, increment = self._position()
        if largest is not None and increment > 0 and largest >= position:
            self.conn.execute("SELECT pg_catalog.setval(%s::regclass, %s, true)",
                              (self.seq, largest))

    def take(self, count: int) -> str:
        """One new value; ``count`` values are taken at once when the pool is empty."""
        if not self.pool:
            self.pool = self._more(max(count, 1))[::-1]
        return self.pool.pop()

    def _more(self, count: int) -> list[str]:
        if self.seq is not None and not self.simulate:
            if self.next is None:
                self.move_past_max()
                self.next = 0
            rows = self.conn.execute(
                "SELECT pg_catalog.nextval(%s::regclass) FROM generate_series(1, %s)",
                (self.seq, count)).fetchall()
            return sorted((str(v) for (v,) in rows), key=int)
        if self.next is None:
            largest = self._largest()
            if self.seq is None:
                self.next = 1 if largest is None else largest + 1
            else:
                position, self.increment = self._position()
                if largest is not None and largest >= position:
                    position = largest + self.increment
                self.next = position
        values = [str(self.next + i * self.increment) for i in range(count)]
        self.next += count * self.increment
        return values

