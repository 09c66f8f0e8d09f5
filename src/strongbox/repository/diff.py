"""Compare two snapshots' trees.

Subtrees with the same id are identical and skipped without being read, so diffing two
snapshots of a large, mostly unchanged tree reads only the folders that changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from strongbox.repository.repository import Repository
from strongbox.repository.tree import Node

ADDED, REMOVED, MODIFIED, METADATA = "+", "-", "M", "m"


@dataclass(frozen=True)
class Change:
    kind: str  # one of + - M m
    path: str
    type: str


def _content_differs(a: Node, b: Node) -> bool:
    # meta: a database table kept in the page copy has no content of its own; its row
    # count and columns are what can show that it changed.
    return (a.type != b.type or a.content != b.content or a.link_target != b.link_target
            or a.size != b.size or a.meta != b.meta)


def _meta_differs(a: Node, b: Node) -> bool:
    return (a.mode, a.mtime_ns, a.uid, a.gid) != (b.mode, b.mtime_ns, b.uid, b.gid)


def _all(repo: Repository, node: Node, path: str, kind: str) -> Iterator[Change]:
    yield Change(kind, path, node.type)
    if node.type == "dir" and node.subtree:
        for sub_path, sub in repo.iter_tree(node.subtree, path):
            yield Change(kind, sub_path, sub.type)


def diff_trees(repo: Repository, old_id: str | None, new_id: str | None,
               prefix: str = "") -> Iterator[Change]:
    if old_id == new_id:
        return
    old = {n.name: n for n in repo.load_tree(old_id).nodes} if old_id else {}
    new = {n.name: n for n in repo.load_tree(new_id).nodes} if new_id else {}
    for name in sorted(old.keys() | new.keys()):
        path = f"{prefix}/{name}" if prefix else name
        a, b = old.get(name), new.get(name)
        if a is None and b is not None:
            yield from _all(repo, b, path, ADDED)
        elif b is None and a is not None:
            yield from _all(repo, a, path, REMOVED)
        elif a is not None and b is not None:
            if a.type == "dir" and b.type == "dir":
                if _meta_differs(a, b):
                    yield Change(METADATA, path, "dir")
                yield from diff_trees(repo, a.subtree, b.subtree, path)
            elif _content_differs(a, b):
                yield Change(MODIFIED, path, b.type)
            elif _meta_differs(a, b):
                yield Change(METADATA, path, b.type)
