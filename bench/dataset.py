"""Deterministic benchmark dataset: generate a file tree, then mutate it.

    python bench/dataset.py generate DIR --size-mib 2048 --seed 1
    python bench/dataset.py mutate DIR --seed 2

Same seed and size give byte-identical trees on the same platform: every file draws its
bytes from its own ``random.Random`` seeded with the dataset seed and its path, so the
result does not depend on the order files are written in.
"""

from __future__ import annotations

import argparse
import os
import random
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

KIB = 1024
MIB = 1024 * KIB

SMALL_RANGE = (1 * KIB, 16 * KIB)
MEDIUM_RANGE = (100 * KIB, 5 * MIB)
LARGE_RANGE = (50 * MIB, 300 * MIB)
# Budget shares of the requested size; large files take the rest.
SMALL_SHARE = 0.10
MEDIUM_SHARE = 0.37
COPY_SHARE = 0.03

WRITE_BLOCK = 8 * MIB
MIXED_BLOCK = 1 * MIB
FILES_PER_DIR = 40
MAX_DEPTH = 5
BASE_MTIME = 1_700_000_000  # fixed so that metadata, like content, is reproducible

Kind = Literal["text", "random", "mixed"]
TEXT_SUFFIXES = (".txt", ".log", ".csv", ".md", ".json")
RANDOM_SUFFIXES = (".bin", ".jpg", ".gz", ".dat")
MIXED_SUFFIXES = (".img", ".db")


@dataclass(frozen=True)
class FileSpec:
    path: str  # POSIX path relative to the dataset root
    size: int
    kind: Kind


@dataclass
class DatasetPlan:
    files: list[FileSpec] = field(default_factory=list)
    copies: list[tuple[str, str]] = field(default_factory=list)  # (source, duplicate)
    symlinks: list[tuple[str, str]] = field(default_factory=list)  # (link, relative target)
    empty_dirs: list[str] = field(default_factory=list)

    def total_bytes(self) -> int:
        sizes = {spec.path: spec.size for spec in self.files}
        return sum(sizes.values()) + sum(sizes[source] for source, _ in self.copies)


# ---------------------------------------------------------------- content generation


@cache
def token_table(seed: int) -> tuple[bytes, ...]:
    """65536 text fragments; two random bytes pick one, so text costs ~16 bits per ~14 B.

    That gives prose- and log-like content that zstd compresses about 3x, yet is unique
    per file, so compression rather than deduplication is what shrinks it.
    """
    rng = random.Random(f"{seed}/vocabulary")
    letters = b"etaoinshrdlcumwfgypbvkjxqz"
    weights = list(range(len(letters), 0, -1))
    words = [bytes(rng.choices(letters, weights, k=rng.randint(2, 10))) for _ in range(3000)]
    levels = (b"DEBUG", b"INFO", b"INFO", b"INFO", b"WARN", b"ERROR")
    table: list[bytes] = []
    for _ in range(65536):
        if rng.random() < 0.25:
            stamp = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
            stamp += f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
            fragment = b"\n" + stamp.encode() + b" " + rng.choice(levels) + b" "
            fragment += rng.choice(words) + b"=" + str(rng.randint(0, 9999)).encode() + b" "
        else:
            sep = rng.choices((b" ", b", ", b". ", b"\n"), (80, 8, 8, 4))[0]
            fragment = rng.choice(words) + b" " + rng.choice(words) + sep
        table.append(fragment)
    return tuple(table)


def text_bytes(rng: random.Random, size: int, seed: int) -> bytes:
    table = token_table(seed)
    parts: list[bytes] = []
    produced = 0
    while produced < size:
        count = (size - produced) // 16 + 16
        chunk = b"".join(map(table.__getitem__, memoryview(rng.randbytes(2 * count)).cast("H")))
        parts.append(chunk)
        produced += len(chunk)
    return b"".join(parts)[:size]


def mixed_bytes(rng: random.Random, size: int, seed: int) -> bytes:
    """Disk-image-like: runs of random, text and zeroed blocks."""
    parts: list[bytes] = []
    for start in range(0, size, MIXED_BLOCK):
        length = min(MIXED_BLOCK, size - start)
        choice = rng.choices(("random", "text", "zero"), (5, 3, 2))[0]
        if choice == "random":
            parts.append(rng.randbytes(length))
        elif choice == "text":
            parts.append(text_bytes(rng, length, seed))
        else:
            parts.append(bytes(length))
    return b"".join(parts)


def content_bytes(rng: random.Random, kind: Kind, size: int, seed: int) -> bytes:
    if kind == "random":
        return rng.randbytes(size)
    if kind == "text":
        return text_bytes(rng, size, seed)
    return mixed_bytes(rng, size, seed)


def content_blocks(spec: FileSpec, seed: int) -> Iterator[bytes]:
    rng = random.Random(f"{seed}/file/{spec.path}")
    for start in range(0, spec.size, WRITE_BLOCK):
        yield content_bytes(rng, spec.kind, min(WRITE_BLOCK, spec.size - start), seed)


def kind_of(path: str) -> Kind:
    suffix = os.path.splitext(path)[1]
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in MIXED_SUFFIXES:
        return "mixed"
    return "random"


# ---------------------------------------------------------------- planning


def sizes_for_budget(rng: random.Random, budget: int, low: int, high: int) -> list[int]:
    sizes: list[int] = []
    remaining = budget
    while remaining >= low:
        size = min(rng.randint(low, high), remaining)
        sizes.append(size)
        remaining -= size
    if sizes:
        sizes[-1] += remaining  # keep the total honest rather than drop the tail
    return sizes


def large_range(budget: int) -> tuple[int, int]:
    """50-300 MiB, scaled down when the budget cannot hold two files of that size."""
    low, high = LARGE_RANGE
    if budget >= 2 * low:
        return low, high
    return max(MIB, budget // 4), max(MIB, budget // 2)


def file_name(rng: random.Random, kind: Kind, index: int) -> str:
    suffixes = {"text": TEXT_SUFFIXES, "random": RANDOM_SUFFIXES, "mixed": MIXED_SUFFIXES}
    stem = rng.choice(("report", "data", "img", "notes", "export", "cache", "part", "log"))
    return f"{stem}_{index:05d}{rng.choice(suffixes[kind])}"


def nested_dirs(rng: random.Random, root: str, count: int) -> list[str]:
    dirs = [root]
    for index in range(count - 1):
        parent = rng.choice([d for d in dirs if d.count("/") < MAX_DEPTH] or [root])
        dirs.append(f"{parent}/d{index:04d}")
    return dirs


def plan_group(
    rng: random.Random, root: str, sizes: list[int], kinds: dict[Kind, int], per_dir: int
) -> list[FileSpec]:
    dirs = nested_dirs(rng, root, max(1, len(sizes) // per_dir))
    specs: list[FileSpec] = []
    for index, size in enumerate(sizes):
        kind: Kind = rng.choices(list(kinds), list(kinds.values()))[0]
        specs.append(FileSpec(f"{rng.choice(dirs)}/{file_name(rng, kind, index)}", size, kind))
    return specs


def plan_copies(rng: random.Random, medium: list[FileSpec], budget: int) -> list[tuple[str, str]]:
    copies: list[tuple[str, str]] = []
    candidates = [spec for spec in medium if spec.size <= budget]
    rng.shuffle(candidates)
    for index, spec in enumerate(candidates):
        if spec.size > budget:
            continue
        copies.append((spec.path, f"copies/copy_{index:03d}_{spec.path.rsplit('/', 1)[-1]}"))
        budget -= spec.size
    return copies


def plan_links(rng: random.Random, files: list[FileSpec], count: int) -> list[tuple[str, str]]:
    links: list[tuple[str, str]] = []
    for index in range(count):
        holder = rng.choice(files).path.rsplit("/", 1)[0]
        target = rng.choice(files).path
        parent = target.rsplit("/", 1)[0]
        # Some links point at directories, never at an ancestor: no cycles for followers.
        if index % 5 == 0 and not f"{holder}/".startswith(f"{parent}/"):
            target = parent
        relative = os.path.relpath(target, holder)
        links.append((f"{holder}/link_{index:03d}", relative))
    return links


def plan_dataset(size_bytes: int, seed: int) -> DatasetPlan:
    rng = random.Random(f"{seed}/plan")
    small_sizes = sizes_for_budget(rng, int(size_bytes * SMALL_SHARE), *SMALL_RANGE)
    medium_sizes = sizes_for_budget(rng, int(size_bytes * MEDIUM_SHARE), *MEDIUM_RANGE)
    small = plan_group(rng, "small", small_sizes, {"text": 7, "random": 3}, FILES_PER_DIR)
    medium = plan_group(rng, "medium", medium_sizes, {"text": 5, "random": 4, "mixed": 1}, 8)
    copies = plan_copies(rng, medium, int(size_bytes * COPY_SHARE))
    sizes = {spec.path: spec.size for spec in small + medium}
    used = sum(sizes.values()) + sum(sizes[source] for source, _ in copies)
    large_budget = max(0, size_bytes - used)
    large_sizes = sizes_for_budget(rng, large_budget, *large_range(large_budget))
    large = plan_group(rng, "large", large_sizes, {"random": 2, "mixed": 2, "text": 1}, 100)
    files = small + medium + large
    small_dirs = sorted({spec.path.rsplit("/", 1)[0] for spec in small}) or ["small"]
    empty = [
        f"{rng.choice(small_dirs)}/empty_{i:02d}" for i in range(max(2, len(small_dirs) // 20))
    ]
    empty.append("cache/tmp/sessions")
    links = plan_links(rng, files, max(3, len(files) // 100)) if files else []
    return DatasetPlan(files, copies, links, empty)


# ---------------------------------------------------------------- writing


def write_file(root: Path, spec: FileSpec, seed: int) -> None:
    path = root / spec.path
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for block in content_blocks(spec, seed):
            out.write(block)


def set_mtime(path: Path, offset: int) -> None:
    os.utime(path, (BASE_MTIME + offset, BASE_MTIME + offset), follow_symlinks=False)


def write_dataset(root: Path, plan: DatasetPlan, seed: int) -> None:
    for index, spec in enumerate(plan.files):
        write_file(root, spec, seed)
        set_mtime(root / spec.path, index)
    for index, (source, duplicate) in enumerate(plan.copies):
        (root / duplicate).parent.mkdir(parents=True, exist_ok=True)
        (root / duplicate).write_bytes((root / source).read_bytes())
        set_mtime(root / duplicate, len(plan.files) + index)
    for directory in plan.empty_dirs:
        (root / directory).mkdir(parents=True, exist_ok=True)
    for link, target in plan.symlinks:
        os.symlink(target, root / link)
        set_mtime(root / link, 0)


def generate(root: Path, size_mib: int, seed: int) -> DatasetPlan:
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"refusing to generate into non-empty directory {root}")
    root.mkdir(parents=True, exist_ok=True)
    plan = plan_dataset(size_mib * MIB, seed)
    write_dataset(root, plan, seed)
    return plan


# ---------------------------------------------------------------- mutation


@dataclass
class MutationReport:
    rewritten: list[str] = field(default_factory=list)
    appended: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    bytes_written: int = 0


def scan_tree(root: Path) -> tuple[list[str], set[str]]:
    """Regular files (sorted, relative) and the files that symlinks point at."""
    files: list[str] = []
    link_targets: set[str] = set()
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(directory, name)
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                link_targets.add(os.path.normpath(Path(directory, os.readlink(path))))
            else:
                files.append(relative)
    inside = (t for t in link_targets if t.startswith(f"{root}/"))
    return files, {Path(t).relative_to(root).as_posix() for t in inside}


def rewrite_middle(path: Path, rng: random.Random, seed: int) -> int:
    size = path.stat().st_size
    length = max(1, min(MIB, size // 8))
    offset = max(0, size // 2 - length // 2 + rng.randint(-length, length))
    length = min(length, max(0, size - offset))
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(content_bytes(rng, kind_of(path.name), length, seed))
    return length


def append_tail(path: Path, rng: random.Random, seed: int) -> int:
    length = rng.randint(1 * KIB, 128 * KIB)
    with path.open("ab") as handle:
        handle.write(content_bytes(rng, kind_of(path.name), length, seed))
    return length


def add_files(root: Path, rng: random.Random, files: list[str], count: int, seed: int) -> list[str]:
    added: list[str] = []
    for index in range(count):
        directory = rng.choice(files).rsplit("/", 1)[0]
        kind: Kind = rng.choice(("text", "random"))
        size = rng.randint(*(MEDIUM_RANGE if index % 5 == 0 else SMALL_RANGE))
        name = f"new_{seed}_{index:03d}_{file_name(rng, kind, index)}"
        spec = FileSpec(f"{directory}/{name}", size, kind)
        write_file(root, spec, seed)
        added.append(spec.path)
    return added


def mutate(root: Path, seed: int, change_share: float = 0.05) -> MutationReport:
    rng = random.Random(f"{seed}/mutate")
    root = root.resolve()
    files, link_targets = scan_tree(root)
    if not files:
        raise SystemExit(f"no files to mutate under {root}")
    report = MutationReport()
    chosen = rng.sample(files, max(1, round(change_share * len(files))))
    for relative in chosen:
        path = root / relative
        operation = rng.choice(("rewrite", "append", "both"))
        if operation in ("rewrite", "both"):
            report.bytes_written += rewrite_middle(path, rng, seed)
            report.rewritten.append(relative)
        if operation in ("append", "both"):
            report.bytes_written += append_tail(path, rng, seed)
            report.appended.append(relative)
    few = max(1, len(files) // 200)
    deletable = sorted(set(files) - set(chosen) - link_targets)
    report.deleted = rng.sample(deletable, min(few, len(deletable)))
    for relative in report.deleted:
        (root / relative).unlink()
    report.added = add_files(root, rng, files, few, seed)
    return report


# ---------------------------------------------------------------- accounting and CLI


def tree_bytes(root: Path) -> int:
    """Bytes in regular files (symlinks not followed)."""
    total = 0
    for directory, _, filenames in os.walk(root):
        for name in filenames:
            info = os.lstat(os.path.join(directory, name))
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def describe_plan(plan: DatasetPlan) -> str:
    by_kind: dict[str, int] = {}
    for spec in plan.files:
        by_kind[spec.kind] = by_kind.get(spec.kind, 0) + spec.size
    kinds = ", ".join(f"{kind} {size / MIB:.1f} MiB" for kind, size in sorted(by_kind.items()))
    return (
        f"{len(plan.files)} files + {len(plan.copies)} duplicates, {len(plan.symlinks)} symlinks, "
        f"{len(plan.empty_dirs)} empty dirs, {plan.total_bytes() / MIB:.1f} MiB ({kinds})"
    )


def describe_mutation(report: MutationReport) -> str:
    return (
        f"rewrote {len(report.rewritten)}, appended to {len(report.appended)}, "
        f"added {len(report.added)}, deleted {len(report.deleted)} files; "
        f"{report.bytes_written / MIB:.1f} MiB written in changed files"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write a new dataset into an empty DIR")
    gen.add_argument("dir", type=Path)
    gen.add_argument("--size-mib", type=int, default=2048)
    gen.add_argument("--seed", type=int, default=1)
    mut = commands.add_parser("mutate", help="change ~5%% of files, add and delete a few")
    mut.add_argument("dir", type=Path)
    mut.add_argument("--seed", type=int, default=2)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "generate":
        print(describe_plan(generate(args.dir, args.size_mib, args.seed)))
    else:
        print(describe_mutation(mutate(args.dir, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
