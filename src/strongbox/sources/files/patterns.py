"""Include/exclude glob patterns for file trees.

A pattern is matched against the entry's path relative to the snapshot root (``docs/a.txt``)
and against its base name, so ``*.log`` excludes log files at any depth while
``build/cache`` names one folder. ``*`` also matches ``/`` (fnmatch semantics), so
``logs/*`` covers everything below ``logs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase


def _matches(patterns: Sequence[str], rel_path: str) -> bool:
    name = rel_path.rsplit("/", 1)[-1]
    return any(fnmatchcase(rel_path, p) or fnmatchcase(name, p) for p in patterns)


@dataclass(frozen=True)
class PathFilter:
    include: tuple[str, ...] = field(default_factory=tuple)
    exclude: tuple[str, ...] = field(default_factory=tuple)

    def excludes(self, rel_path: str) -> bool:
        """True if the entry (file or folder) is excluded outright."""
        return bool(self.exclude) and _matches(self.exclude, rel_path)

    def includes_file(self, rel_path: str) -> bool:
        """True if a file passes the include list (an empty list includes everything)."""
        if self.excludes(rel_path):
            return False
        return not self.include or _matches(self.include, rel_path)
