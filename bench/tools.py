"""The backup tools under comparison, each reduced to the commands the benchmark runs.

All three encrypt; compression is each tool's comparable default (restic: auto = zstd,
borg: zstd level 3, Strongbox: its default).
"""

from __future__ import annotations

import os
import shutil
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

PASSPHRASE = "strongbox-bench-passphrase"
# Settings a user may have exported that would change what the tools do.
FOREIGN_ENV_PREFIXES = ("RESTIC_", "BORG_", "STRONGBOX_")


@dataclass(frozen=True)
class Command:
    argv: list[str]
    cwd: Path


class Tool(ABC):
    name: str

    def __init__(self, repo: Path, home: Path) -> None:
        self.repo = repo
        self.home = home  # the tool's caches and config, kept out of the user's home

    @abstractmethod
    def executable(self) -> list[str] | None:
        """The argv prefix that runs the tool, or None when it is not installed."""

    @abstractmethod
    def tool_env(self) -> dict[str, str]: ...

    @abstractmethod
    def init(self) -> Command: ...

    @abstractmethod
    def backup(self, dataset: Path, label: str) -> Command: ...

    @abstractmethod
    def restore(self, target: Path) -> Command:
        """Restore the latest snapshot; target does not exist yet."""

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV_PREFIXES)}
        return base | self.tool_env()

    def argv(self, *args: str | Path) -> list[str]:
        prefix = self.executable()
        if prefix is None:
            raise RuntimeError(f"{self.name} is not installed")
        return prefix + [str(arg) for arg in args]


class Strongbox(Tool):
    name = "strongbox"

    def executable(self) -> list[str] | None:
        # Prefer the script next to this interpreter: a pyenv shim on PATH adds ~0.1 s a call.
        beside = Path(sys.executable).parent / "strongbox"
        if beside.exists():
            return [str(beside)]
        on_path = shutil.which("strongbox")
        return [on_path] if on_path else [sys.executable, "-m", "strongbox"]

    def tool_env(self) -> dict[str, str]:
        return {"STRONGBOX_PASSPHRASE": PASSPHRASE}

    def init(self) -> Command:
        return Command(self.argv("repo", "init", "--repo", self.repo), self.home)

    def backup(self, dataset: Path, label: str) -> Command:
        return Command(self.argv("repo", "backup", "--repo", self.repo, dataset), self.home)

    def restore(self, target: Path) -> Command:
        argv = self.argv("repo", "restore", "--repo", self.repo, "latest", "--target", target)
        return Command(argv, self.home)


class Restic(Tool):
    name = "restic"

    def executable(self) -> list[str] | None:
        found = shutil.which("restic")
        return [found] if found else None

    def tool_env(self) -> dict[str, str]:
        return {"RESTIC_PASSWORD": PASSPHRASE, "RESTIC_CACHE_DIR": str(self.home / "cache")}

    def init(self) -> Command:
        # Format version 2 is the one with compression (auto = zstd).
        argv = self.argv("-r", self.repo, "init", "--repository-version", "2")
        return Command(argv, self.home)

    def backup(self, dataset: Path, label: str) -> Command:
        return Command(self.argv("-r", self.repo, "backup", "--tag", label, dataset), self.home)

    def restore(self, target: Path) -> Command:
        # restic recreates the absolute source path below target.
        return Command(
            self.argv("-r", self.repo, "restore", "latest", "--target", target), self.home
        )


class Borg(Tool):
    name = "borg"

    def __init__(self, repo: Path, home: Path) -> None:
        super().__init__(repo, home)
        self.last_archive: str | None = None

    def executable(self) -> list[str] | None:
        found = shutil.which("borg")
        return [found] if found else None

    def tool_env(self) -> dict[str, str]:
        return {"BORG_PASSPHRASE": PASSPHRASE, "BORG_BASE_DIR": str(self.home)}

    def init(self) -> Command:
        return Command(self.argv("init", "--encryption=repokey-blake2", self.repo), self.home)

    def backup(self, dataset: Path, label: str) -> Command:
        # Archive the directory by its name from its parent, so paths inside are short.
        self.last_archive = label
        argv = self.argv("create", "--compression", "zstd,3", f"{self.repo}::{label}", dataset.name)
        return Command(argv, dataset.parent)

    def restore(self, target: Path) -> Command:
        if self.last_archive is None:
            raise RuntimeError("borg: no archive to restore")
        target.mkdir(parents=True)  # borg extracts into its working directory
        return Command(self.argv("extract", f"{self.repo}::{self.last_archive}"), target)


TOOL_CLASSES: dict[str, type[Tool]] = {cls.name: cls for cls in (Strongbox, Restic, Borg)}


def locate_restored_root(target: Path, dataset: Path) -> Path | None:
    """Where the dataset's contents landed below target, whichever layout the tool uses."""
    markers = [entry.name for entry in dataset.iterdir()]
    candidates = (target / dataset.resolve().relative_to("/"), target / dataset.name, target)
    for candidate in candidates:
        if candidate.is_dir() and all(os.path.lexists(candidate / m) for m in markers):
            return candidate
    return None
