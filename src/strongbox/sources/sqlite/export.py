"""Export tables as JSON or CSV (seed 002), and read such exports back for import.

Both directions stream: an export is written row by row, and an import reads rows as the
restore needs them. Any reader with ``SnapshotReader``'s interface can be exported: a
backup (``SnapshotReader``) or a live database (``LiveDatabaseReader``).

JSON layout (``strongbox-export/1``), one row per line so it streams both ways and is
still one valid JSON document::

    {"format": "strongbox-export/1", "exported_at": ..., "source": ..., "links": [...],
     "schema": [...], "tables": [
    {"name": "projects", "columns": [...], "primary_key": [...], "rowid": false, "rows": [
    [...],
    [...]]}
    ]}

Values are JSON where JSON is exact; otherwise tagged objects: ``{"$base64": ...}`` for a
BLOB, ``{"$text_base64": ...}`` for TEXT that is not UTF-8, ``{"$float": "inf"}`` for
non-finite reals. JSON exports are lossless. CSV writes one file per table (a header row,
then rows; NULL as ``\\N``, BLOB as ``\\x<hex>``, a text starting with a backslash gets one
more); on import SQLite's column affinity gives values their types back.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from strongbox.errors import InvalidRequest
from strongbox.sources.sqlite.codec import InvalidText
from strongbox.sources.sqlite.foreign_keys import ForeignKey, ForeignKeyGraph
from strongbox.sources.sqlite.reader import TableInfo

FORMAT = "strongbox-export/1"


class RowReader(Protocol):
    manifest: dict[str, Any]

    def tables(self) -> list[TableInfo]: ...

    def rows(self, name: str) -> Iterator[tuple[Any, ...]]: ...

    def links(self) -> list[ForeignKey]: ...

    def schema(self) -> list[dict[str, str]]: ...


@dataclass
class ExportResult:
    format: str
    record_count: int
    table_counts: dict[str, int]
    export_timestamp: str
    compressed: bool
    files: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def encode_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$base64": base64.b64encode(value).decode()}
    if isinstance(value, InvalidText):
        return {"$text_base64": base64.b64encode(value.raw).decode()}
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    return value


def decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if "$base64" in value:
            return base64.b64decode(value["$base64"])
        if "$text_base64" in value:
            return InvalidText(base64.b64decode(value["$text_base64"]))
        if "$float" in value:
            return float(value["$float"])
        raise InvalidRequest(f"unknown tagged value {value!r} in import")
    return value


def _open_out(path: Path, compress: bool) -> IO[str]:
    if compress:
        return io.TextIOWrapper(gzip.open(path, "wb"), encoding="utf-8", newline="")
    return open(path, "w", encoding="utf-8", newline="")


def _selected(reader: RowReader, tables: list[str] | None) -> list[TableInfo]:
    infos = reader.tables()
    if tables:
        known = {t.name for t in infos}
        missing = [t for t in tables if t not in known]
        if missing:
            raise InvalidRequest(f"no such table to export: {', '.join(missing)}")
        infos = [t for t in infos if t.name in tables]
    return infos


def _header_columns(info: TableInfo) -> list[str]:
    return ["rowid", *info.columns] if info.has_rowid_key else list(info.columns)


def export_json(reader: RowReader, out: Path, *, tables: list[str] | None = None,
                compress: bool = False) -> ExportResult:
    infos = _selected(reader, tables)
    stamp = datetime.now(UTC).isoformat()
    counts: dict[str, int] = {}
    with _open_out(out, compress) as fh:
        head = {"format": FORMAT, "exported_at": stamp,
                "source": reader.manifest.get("source"),
                "links": [link.__dict__ for link in reader.links()],
                "schema": reader.schema()}
        fh.write(json.dumps(head)[:-1] + ', "tables": [\n')
        for i, info in enumerate(infos):
            meta = {"name": info.name, "columns": info.columns,
                    "primary_key": list(info.primary_key), "rowid": info.has_rowid_key}
            fh.write(("," if i else "") + json.dumps(meta)[:-1] + ', "rows": [\n')
            counts[info.name] = 0
            for row in reader.rows(info.name):
                fh.write(("," if counts[info.name] else "")
                         + json.dumps([encode_value(v) for v in row]) + "\n")
                counts[info.name] += 1
            fh.write("]}\n")
        fh.write("]}\n")
    return ExportResult("json", sum(counts.values()), counts, stamp, compress, [str(out)])


def _csv_cell(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, InvalidText):
        return "\\x" + value.raw.hex()
    text = repr(value) if isinstance(value, float) else str(value)
    return "\\" + text if text.startswith("\\") else text


def export_csv(reader: RowReader, out_dir: Path, *, tables: list[str] | None = None,
               compress: bool = False, delimiter: str = ",") -> ExportResult:
    infos = _selected(reader, tables)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).isoformat()
    counts: dict[str, int] = {}
    files = []
    for info in infos:
        path = out_dir / f"{info.name}.csv{'.gz' if compress else ''}"
        with _open_out(path, compress) as fh:
            writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
            writer.writerow(_header_columns(info))
            counts[info.name] = 0
            for row in reader.rows(info.name):
                writer.writerow([_csv_cell(v) for v in row])
                counts[info.name] += 1
        files.append(str(path))
    return ExportResult("csv", sum(counts.values()), counts, stamp, compress, files)


# --- reading exports back ------------------------------------------------------------------


def _open_in(path: Path) -> IO[str]:
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


class JsonExportReader:
    """An export file read back with the snapshot-reader interface (for import)."""

    selective = True

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with _open_in(path) as fh:
                head = json.loads(fh.readline().rsplit(', "tables": [', 1)[0] + "}")
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"{path.name}: not a Strongbox JSON export ({exc})") from exc
        if head.get("format") != FORMAT:
            raise InvalidRequest(f"{path.name}: unsupported export format "
                                 f"{head.get('format')!r}")
        self.manifest = {"source": head.get("source"), "format": FORMAT}
        self._links = [ForeignKey(d["child_table"], tuple(d["child_columns"]),
                                  d["parent_table"], tuple(d["parent_columns"]))
                       for d in head.get("links", [])]
        self._schema = list(head.get("schema", []))
        self._tables = self._scan_tables()

    def _scan_tables(self) -> dict[str, TableInfo]:
        tables: dict[str, TableInfo] = {}
        for meta, rows in self._sections():
            count = sum(1 for _ in rows)
            tables[meta["name"]] = TableInfo(meta["name"], list(meta["columns"]),
                                             tuple(meta["primary_key"]), count,
                                             bool(meta.get("rowid")))
        return tables

    def _sections(self) -> Iterator[tuple[dict[str, Any], Iterator[tuple[Any, ...]]]]:
        with _open_in(self.path) as fh:
            fh.readline()
            line = fh.readline()
            while line and line.strip() != "]}":
                meta = json.loads(line.lstrip(",").rsplit(', "rows": [', 1)[0] + "}")
                yield meta, self._table_rows(fh)
                line = fh.readline()

    @staticmethod
    def _table_rows(fh: IO[str]) -> Iterator[tuple[Any, ...]]:
        for line in fh:
            if line.startswith("]}"):
                return
            yield tuple(decode_value(v) for v in json.loads(line.lstrip(",")))

    def tables(self) -> list[TableInfo]:
        return list(self._tables.values())

    def table(self, name: str) -> TableInfo:
        if name not in self._tables:
            raise InvalidRequest(f"table {name!r} is not in {self.path.name}")
        return self._tables[name]

    def rows(self, name: str) -> Iterator[tuple[Any, ...]]:
        self.table(name)
        for meta, rows in self._sections():
            if meta["name"] == name:
                yield from rows
                return
            for _ in rows:
                pass

    def links(self) -> list[ForeignKey]:
        return list(self._links)

    def graph(self) -> ForeignKeyGraph:
        return ForeignKeyGraph(list(self._tables), self._links)

    def schema(self) -> list[dict[str, str]]:
        return list(self._schema)

    def page_copy(self) -> None:
        return None
