"""Build file trees for tests and compare them byte-for-byte with their metadata."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def describe(root: Path) -> dict[str, tuple]:
    """Everything a restore must reproduce, keyed by relative path."""
    result: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                result[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                result[rel] = ("dir", mode, st.st_mtime_ns)
            else:
                result[rel] = ("file", mode, st.st_mtime_ns, path.read_bytes())
    return result


def hardlink_groups(root: Path) -> set[frozenset[str]]:
    groups: dict[int, set[str]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            st = path.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                groups.setdefault(st.st_ino, set()).add(str(path.relative_to(root)))
    return {frozenset(g) for g in groups.values()}
