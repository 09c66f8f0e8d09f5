"""What the catalog records about a finished snapshot (seed 000 ``BackupMetadata``)."""

from __future__ import annotations

import contextlib
from typing import Any

from strongbox.errors import StrongboxError
from strongbox.moments import date_range
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.services.storage import (
    RepositoryInfo,
    logical_size,
    snapshot_blobs,
    snapshot_checksum,
    stored_size,
)
from strongbox.sources.sqlite.backup import CONTENT_COUNTERS, DATE_RANGE_TABLES
from strongbox.sources.sqlite.reader import SnapshotReader


def empty_contents() -> dict[str, Any]:
    return {**dict.fromkeys(CONTENT_COUNTERS, 0), "total_documents": 0}


def describe(repo: Repository, snapshot: Snapshot, info: RepositoryInfo) -> dict[str, Any]:
    """Sizes, contents, checksum, encryption and compression of a stored snapshot."""
    size, entries = logical_size(repo, snapshot)
    stored = stored_size(repo, snapshot_blobs(repo, snapshot.tree))
    level = repo.config.compression_level
    return {
        "snapshot_id": snapshot.id,
        "size_bytes": size,
        "compressed_size_bytes": stored,
        "added_bytes": int(snapshot.summary.get("bytes_new_stored", 0)),
        "contents": _contents(repo, snapshot, entries),
        "checksum": snapshot_checksum(repo, snapshot.id),
        "encryption": {"enabled": info.encrypted,
                       **({"algorithm": "aes-256-gcm", "key_id": repo.key_slot}
                          if info.encrypted and repo.key_slot else {})},
        "compression": {"enabled": level > 0, "algorithm": "zstd", "level": level,
                        "original_size_bytes": size, "compressed_size_bytes": stored,
                        "compression_ratio": round(size / stored, 3) if stored else 1.0},
    }


def _contents(repo: Repository, snapshot: Snapshot, entries: int) -> dict[str, Any]:
    contents = empty_contents()
    if snapshot.kind == "files":
        summary = snapshot.summary
        contents["total_documents"] = int(summary.get("files_new", 0)
                                          + summary.get("files_changed", 0)
                                          + summary.get("files_unmodified", 0)) or entries
        return contents
    contents.update(snapshot.summary.get("contents", {}))
    date_range = _date_range(repo, snapshot)
    if date_range is not None:
        contents["date_range"] = date_range
    return contents


def _date_range(repo: Repository, snapshot: Snapshot) -> dict[str, str] | None:
    """Earliest and latest ``created_at`` of the backed-up sessions (or projects)."""
    with (contextlib.suppress(StrongboxError, KeyError, ValueError),
          SnapshotReader(repo, snapshot) as reader):
            if "date_range" in reader.manifest:  # worked out by the backup itself
                return reader.manifest["date_range"]
            names = {t.name: t for t in reader.tables()}
            for table_name in DATE_RANGE_TABLES:
                table = names.get(table_name)
                if table is None or "created_at" not in table.columns:
                    continue
                position = (table.columns.index("created_at")
                            + (1 if table.has_rowid_key else 0))
                found = date_range(row[position] for row in reader.rows(table_name))
                if found:
                    return found
    return None
