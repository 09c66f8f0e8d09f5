"""A small demo file tree to back up: text, binary, nested folders, a symlink."""

from __future__ import annotations

import random
import sys
from pathlib import Path

WORDS = ("backup", "restore", "snapshot", "chunk", "pack", "index", "verify", "prune",
         "retention", "tenant")


def generate(root: Path, *, seed: int = 0, files: int = 200) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        folder = root / f"dir{i % 7}" / f"sub{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        if i % 10 == 0:
            (folder / f"blob{i}.bin").write_bytes(rng.randbytes(rng.randint(1, 256) * 1024))
        else:
            lines = (" ".join(rng.choices(WORDS, k=12)) for _ in range(rng.randint(5, 500)))
            (folder / f"note{i}.txt").write_text("\n".join(lines) + "\n")
    (root / "empty").mkdir(exist_ok=True)
    link = root / "latest-note"
    if not link.is_symlink():
        link.symlink_to("dir0/sub0/note21.txt")
    return root


if __name__ == "__main__":
    print(generate(Path(sys.argv[1])))
