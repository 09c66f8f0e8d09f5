"""Trees: the directory structure of a snapshot.

A tree is a sorted list of :class:`Node` entries stored as one TREE blob (compact JSON), so
identical directories deduplicate like file content does. A directory node points at its
subtree's blob id; a file node lists its content chunks; a symlink keeps its target; a
hard link to a file already stored in the snapshot names that file's path instead of
repeating its content. A ``stream`` node holds a byte stream that is not a file on disk
(a database table's rows, a schema), which is how database sources use the same engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

NODE_TYPES = ("file", "dir", "symlink", "hardlink", "stream")


@dataclass
class Node:
    name: str
    type: str
    mode: int = 0
    mtime_ns: int = 0
    uid: int = 0
    gid: int = 0
    size: int = 0
    inode: int = 0
    device: int = 0
    content: list[str] = field(default_factory=list)  # hex blob ids, in order
    subtree: str | None = None  # hex tree blob id (dirs)
    link_target: str | None = None  # symlink target, or hardlink's first path
    meta: dict[str, Any] | None = None  # source-specific extras (streams)

    def to_dict(self) -> dict[str, Any]:
        # Omit empty fields: trees of many small files are dominated by these. (Not
        # dataclasses.asdict: its deep copy is the slowest part of writing a tree.)
        doc: dict[str, Any] = {"name": self.name, "type": self.type}
        for key in _OPTIONAL_FIELDS:
            value = getattr(self, key)
            if value not in (None, [], 0, {}):
                doc[key] = value
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Node:
        return cls(**doc)


_OPTIONAL_FIELDS = [f for f in Node.__dataclass_fields__ if f not in ("name", "type")]


@dataclass
class Tree:
    nodes: list[Node] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        nodes = sorted(self.nodes, key=lambda n: n.name)
        return json.dumps({"nodes": [n.to_dict() for n in nodes]},
                          separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Tree:
        return cls([Node.from_dict(d) for d in json.loads(data)["nodes"]])

    def get(self, name: str) -> Node | None:
        for node in self.nodes:
            if node.name == name:
                return node
        return None
