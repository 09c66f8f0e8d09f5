"""Compare two file trees by content: regular files by hash, symlinks by target, dirs by name.

    python bench/treecheck.py EXPECTED_DIR ACTUAL_DIR

Metadata (mtimes, owners, modes) is deliberately left out: the benchmark checks that a
restore gives back the bytes, and the tools differ in which metadata they keep.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path
from typing import Any

Manifest = dict[str, str]


def new_hasher() -> Any:
    try:
        from blake3 import blake3
    except ImportError:  # blake3 comes with Strongbox; the script also runs without it
        return hashlib.sha256()
    return blake3(max_threads=blake3.AUTO)


READ_BLOCK = 4 * 1024 * 1024


def file_digest(path: str) -> str:
    digest = new_hasher()
    with open(path, "rb") as handle:
        while block := handle.read(READ_BLOCK):
            digest.update(block)
    return str(digest.hexdigest())


def describe(path: str) -> str:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return f"link -> {os.readlink(path)}"
    if stat.S_ISDIR(info.st_mode):
        return "dir"
    if stat.S_ISREG(info.st_mode):
        return f"file {info.st_size} {file_digest(path)}"
    return f"special {stat.S_IFMT(info.st_mode):o}"


def tree_manifest(root: Path) -> Manifest:
    """Relative POSIX path -> description of every entry below root (root excluded)."""
    manifest: Manifest = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            manifest[Path(path).relative_to(root).as_posix()] = describe(path)
    return manifest


def manifest_differences(expected: Manifest, actual: Manifest) -> list[str]:
    problems = [f"missing: {path}" for path in sorted(expected.keys() - actual.keys())]
    problems += [f"unexpected: {path}" for path in sorted(actual.keys() - expected.keys())]
    for path in sorted(expected.keys() & actual.keys()):
        if expected[path] != actual[path]:
            problems.append(f"differs: {path} (expected {expected[path]}, got {actual[path]})")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    problems = manifest_differences(tree_manifest(Path(args[0])), tree_manifest(Path(args[1])))
    for problem in problems[:50]:
        print(problem)
    print(f"{len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
