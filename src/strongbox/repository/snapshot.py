"""Snapshots: one immutable, point-in-time capture of one or more sources.

Stored as ``snapshots/<id>``, a sealed JSON document whose id is the hash of its stored
bytes; nothing ever rewrites one (``forget`` deletes the file, and tags are fixed at
creation), so a snapshot id always means the same content.
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from strongbox import __version__


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class Snapshot:
    tree: str  # hex id of the root tree blob
    paths: list[str] = field(default_factory=list)  # what was backed up (sources)
    time: str = field(default_factory=_now)  # ISO 8601, UTC
    hostname: str = field(default_factory=socket.gethostname)
    username: str = field(default_factory=_user)
    tags: list[str] = field(default_factory=list)
    parent: str | None = None
    kind: str = "files"  # which source adapter wrote it: files, sqlite, postgres
    summary: dict[str, Any] = field(default_factory=dict)
    program_version: str = __version__
    id: str = ""  # filled when loaded or saved; not part of the stored document

    def to_bytes(self) -> bytes:
        doc = asdict(self)
        doc.pop("id")
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, snapshot_id: str) -> Snapshot:
        doc = json.loads(data)
        known = {f for f in cls.__dataclass_fields__ if f != "id"}
        return cls(**{k: v for k, v in doc.items() if k in known}, id=snapshot_id)

    @property
    def datetime(self) -> datetime:
        return datetime.fromisoformat(self.time)

    @property
    def short_id(self) -> str:
        return self.id[:8]
