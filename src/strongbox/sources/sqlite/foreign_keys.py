"""Foreign keys of a SQLite database, and the graph of tables they form.

A record-aware backup follows these links so that "project P" means P and everything
that hangs off it, and a restore writes parents before children. Databases without
declared constraints can still be followed through links the user declares.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from strongbox.errors import InvalidRequest


@dataclass(frozen=True)
class ForeignKey:
    """Rows of ``child_table`` point at rows of ``parent_table``: child columns = parent columns."""

    child_table: str
    child_columns: tuple[str, ...]
    parent_table: str
    parent_columns: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.child_columns or len(self.child_columns) != len(self.parent_columns):
            raise InvalidRequest(
                f"link {self.describe()} must pair the same number of columns on each side"
            )

    @property
    def is_self_reference(self) -> bool:
        return self.child_table == self.parent_table

    def describe(self) -> str:
        child = ", ".join(self.child_columns)
        parent = ", ".join(self.parent_columns)
        return f"{self.child_table}({child}) -> {self.parent_table}({parent})"


def quote_identifier(name: str) -> str:
    """Quote a table or column name for SQL; names come from the database, not from code."""
    return '"' + name.replace('"', '""') + '"'


def list_tables(conn: sqlite3.Connection) -> list[str]:
    """User tables by name; SQLite's own sqlite_* tables are not application data."""
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
        "ESCAPE '\\' ORDER BY name"
    )
    return [name for (name,) in rows]


def table_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """Column names of ``table`` in declaration order (empty if there is no such table)."""
    return [row[1] for row in conn.execute(f"PRAGMA table_info({quote_identifier(table)})")]


def primary_key(conn: sqlite3.Connection, table: str) -> tuple[str, ...]:
    """The columns that identify a row; ``("rowid",)`` for a rowid table with no declared key."""
    declared = [
        (row[5], row[1])
        for row in conn.execute(f"PRAGMA table_info({quote_identifier(table)})")
        if row[5]  # the 1-based position in the key, 0 when not part of it
    ]
    if not declared:
        return ("rowid",)
    return tuple(name for _, name in sorted(declared))


def read_foreign_keys(conn: sqlite3.Connection) -> list[ForeignKey]:
    """Every FOREIGN KEY constraint declared in the database, with names as the schema spells them.

    ``PRAGMA foreign_key_list`` reports the parent table and columns as written in the
    REFERENCES clause, which may differ in case from their declarations, and leaves out
    the parent columns when the clause names none (the parent's primary key is meant).
    """
    tables = list_tables(conn)
    canonical = {name.lower(): name for name in tables}
    links: list[ForeignKey] = []
    for child in tables:
        links.extend(_links_of(conn, child, canonical))
    return links


def _links_of(conn: sqlite3.Connection, child: str, canonical: dict[str, str]) -> list[ForeignKey]:
    # Rows: (id, seq, parent table, from column, to column, on_update, on_delete, match).
    rows = conn.execute(f"PRAGMA foreign_key_list({quote_identifier(child)})").fetchall()
    by_constraint: dict[int, list[tuple[int, str, str, str | None]]] = {}
    for constraint, seq, parent, source, target, *_ in rows:
        by_constraint.setdefault(constraint, []).append((seq, parent, source, target))
    links = []
    for constraint in sorted(by_constraint):
        pairs = sorted(by_constraint[constraint])
        parent = canonical.get(pairs[0][1].lower(), pairs[0][1])
        child_columns = _canonical_columns(conn, child, [source for _, _, source, _ in pairs])
        targets = [target for *_, target in pairs]
        if None in targets:
            parent_columns = primary_key(conn, parent)
        else:
            parent_columns = _canonical_columns(conn, parent, [str(t) for t in targets])
        links.append(ForeignKey(child, child_columns, parent, parent_columns))
    return links


def _canonical_columns(conn: sqlite3.Connection, table: str, names: list[str]) -> tuple[str, ...]:
    declared = {column.lower(): column for column in table_columns(conn, table)}
    return tuple(declared.get(name.lower(), name) for name in names)


class ForeignKeyGraph:
    """Tables as nodes, links as edges from parent to child.

    ``cycles`` lists the groups of tables that reference each other in a ring (a table
    referencing itself is a ring of one); ``broken_links`` are the links the table order
    cannot honour because of them, so a restore knows which rows may point forward.
    """

    def __init__(
        self,
        tables: Iterable[str],
        foreign_keys: Iterable[ForeignKey],
        extra_links: Iterable[ForeignKey] = (),
    ) -> None:
        self.tables: tuple[str, ...] = tuple(dict.fromkeys(tables))
        known = set(self.tables)
        declared = list(foreign_keys)
        # A declared constraint may name a table that does not exist (SQLite allows it
        # while enforcement is off); it links nothing, so it is set aside, not fatal.
        self.dangling: tuple[ForeignKey, ...] = tuple(
            link for link in declared if not {link.child_table, link.parent_table} <= known
        )
        for link in extra_links:
            _check_extra_link(link, known)
            declared.append(link)
        self.links: tuple[ForeignKey, ...] = tuple(
            dict.fromkeys(link for link in declared if link not in self.dangling)
        )
        self._children: dict[str, list[ForeignKey]] = {table: [] for table in self.tables}
        self._parents: dict[str, list[ForeignKey]] = {table: [] for table in self.tables}
        for link in self.links:
            self._children[link.parent_table].append(link)
            self._parents[link.child_table].append(link)
        self._order, self.cycles, self.broken_links = _order_tables(self)

    @classmethod
    def from_connection(
        cls, conn: sqlite3.Connection, extra_links: Iterable[ForeignKey] = ()
    ) -> ForeignKeyGraph:
        return cls(list_tables(conn), read_foreign_keys(conn), extra_links)

    def children(self, table: str) -> tuple[ForeignKey, ...]:
        """Links whose parent is ``table``: the ways other rows hang off its rows."""
        return tuple(self._children[self._known(table)])

    def parents(self, table: str) -> tuple[ForeignKey, ...]:
        """Links whose child is ``table``: the rows its rows need."""
        return tuple(self._parents[self._known(table)])

    def topological_order(self) -> list[str]:
        """Every table, parents before children; ties and cycle breaks follow ``tables`` order."""
        return list(self._order)

    def _known(self, table: str) -> str:
        if table not in self._children:
            raise InvalidRequest(f"unknown table {table!r}", details={"table": table})
        return table


def _check_extra_link(link: ForeignKey, known: set[str]) -> None:
    # Unlike declared constraints, a user's link naming a missing table is a mistake to report.
    for table in (link.child_table, link.parent_table):
        if table not in known:
            raise InvalidRequest(
                f"link {link.describe()} names unknown table {table!r}",
                details={"link": link.describe(), "table": table},
            )


def _order_tables(
    graph: ForeignKeyGraph,
) -> tuple[list[str], tuple[tuple[str, ...], ...], tuple[ForeignKey, ...]]:
    """Order the rings of tables (strongly connected groups) parents first, then each ring."""
    rank = {table: index for index, table in enumerate(graph.tables)}
    groups = _strongly_connected(graph, rank)
    order: list[str] = []
    for group in _order_groups(graph, groups, rank):
        order.extend(_order_within(graph, group, rank))
    position = {table: index for index, table in enumerate(order)}
    broken = tuple(
        link for link in graph.links if position[link.parent_table] >= position[link.child_table]
    )
    cycles = tuple(
        tuple(group)
        for group in sorted(groups, key=lambda group: rank[group[0]])
        if len(group) > 1 or any(link.is_self_reference for link in graph.parents(group[0]))
    )
    return order, cycles, broken


def _child_tables(graph: ForeignKeyGraph, table: str) -> set[str]:
    return {link.child_table for link in graph.children(table)}


def _strongly_connected(graph: ForeignKeyGraph, rank: dict[str, int]) -> list[list[str]]:
    """Groups of tables that can all reach each other, each sorted by rank.

    Reachability from every table is quadratic, which is fine for schemas (tens to a few
    hundred tables) and much easier to trust than Tarjan's bookkeeping.
    """
    reach = {table: _reachable(graph, table) for table in graph.tables}
    groups: list[list[str]] = []
    placed: set[str] = set()
    for table in graph.tables:
        if table in placed:
            continue
        group = sorted(
            (other for other in reach[table] if table in reach[other]), key=rank.__getitem__
        )
        group = group or [table]
        placed.update(group)
        groups.append(group)
    return groups


def _reachable(graph: ForeignKeyGraph, start: str) -> set[str]:
    """Tables reachable from ``start`` by one or more parent → child steps."""
    seen: set[str] = set()
    frontier = list(_child_tables(graph, start))
    while frontier:
        table = frontier.pop()
        if table not in seen:
            seen.add(table)
            frontier.extend(_child_tables(graph, table))
    return seen


def _order_groups(
    graph: ForeignKeyGraph, groups: list[list[str]], rank: dict[str, int]
) -> list[list[str]]:
    """Kahn's algorithm over the groups, which form an acyclic graph; ties go by rank."""
    group_of = {table: index for index, group in enumerate(groups) for table in group}
    parents_left: list[set[int]] = [set() for _ in groups]
    for link in graph.links:
        parent, child = group_of[link.parent_table], group_of[link.child_table]
        if parent != child:
            parents_left[child].add(parent)
    ready = [
        (rank[group[0]], index) for index, group in enumerate(groups) if not parents_left[index]
    ]
    heapq.heapify(ready)
    ordered: list[list[str]] = []
    while ready:
        _, index = heapq.heappop(ready)
        ordered.append(groups[index])
        for child in sorted({group_of[c] for t in groups[index] for c in _child_tables(graph, t)}):
            if index in parents_left[child]:
                parents_left[child].discard(index)
                if not parents_left[child]:
                    heapq.heappush(ready, (rank[groups[child][0]], child))
    return ordered


def _order_within(graph: ForeignKeyGraph, group: Sequence[str], rank: dict[str, int]) -> list[str]:
    """Order one ring: take a table whose parents in the ring are all placed; if none is,
    take the one missing the fewest (then the earliest) and break its links to the rest."""
    members = set(group)
    waiting = {
        table: {
            link.parent_table
            for link in graph.parents(table)
            if link.parent_table in members and not link.is_self_reference
        }
        for table in group
    }
    order: list[str] = []
    while waiting:
        table = min(waiting, key=lambda name: (len(waiting[name]), rank[name]))
        order.append(table)
        del waiting[table]
        for parents in waiting.values():
            parents.discard(table)
    return order
