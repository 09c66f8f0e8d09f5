"""Storage backends: where a repository's files live.

A backend stores named, immutable objects in a few folders (``keys``, ``config``, ``data``,
``index``, ``snapshots``, ``locks``). Objects are created atomically and never overwritten in
place, which is what makes an interrupted backup or prune harmless: a reader sees either the
whole object or none of it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from strongbox.errors import BackendError, InsufficientStorage, ObjectExists, ObjectNotFound
from strongbox.fsutil import fsync_dir

FOLDERS = ("keys", "data", "index", "snapshots", "locks")


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int


class Backend(Protocol):
    """What the repository needs from storage. Names are ``folder/name`` or ``config``."""

    location: str

    def create(self, name: str, data: bytes | Sequence[bytes]) -> None:
        """Store a new object atomically; raise ObjectExists if it is already there.
        ``data`` may come in parts (a pack's blobs), stored back to back."""

    def replace(self, name: str, data: bytes) -> None:
        """Store an object atomically, replacing any previous one (locks only)."""

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes: ...

    def stat(self, name: str) -> ObjectInfo: ...

    def exists(self, name: str) -> bool: ...

    def list(self, folder: str) -> Iterator[ObjectInfo]: ...

    def delete(self, name: str) -> None: ...

    def initialise(self) -> None:
        """Prepare an empty location for a new repository."""

    def is_initialised(self) -> bool: ...


def _raise_os_error(exc: OSError, name: str) -> None:
    if exc.errno == errno.ENOENT:
        raise ObjectNotFound(f"object {name} not found") from exc
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise InsufficientStorage(f"no space left writing {name}") from exc
    raise BackendError(f"storage error on {name}: {exc.strerror}") from exc


class LocalBackend:
    """A repository in a local directory.

    Pack files are spread over 256 sub-folders of ``data`` by the first two hex digits
    of their name so no directory grows too large. Writes go to a temporary name in the
    same folder, are fsynced, then renamed into place, and the folder is fsynced so the
    rename itself survives a crash.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.location = str(self.root)

    def _path(self, name: str) -> Path:
        if name == "config":
            return self.root / "config"
        folder, _, leaf = name.partition("/")
        if folder not in FOLDERS or not leaf or "/" in leaf or leaf.startswith("."):
            raise BackendError(f"invalid object name {name!r}")
        if folder == "data":
            return self.root / "data" / leaf[:2] / leaf
        return self.root / folder / leaf

    def initialise(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if any(self.root.iterdir()):
                raise ObjectExists(f"{self.root} is not empty")
            for folder in FOLDERS:
                (self.root / folder).mkdir()
            for i in range(256):
                (self.root / "data" / f"{i:02x}").mkdir()
        except OSError as exc:
            _raise_os_error(exc, str(self.root))

    def is_initialised(self) -> bool:
        return (self.root / "config").is_file()

    def _write_atomic(self, path: Path, data: bytes | Sequence[bytes], *,
                      exclusive: bool) -> None:
        tmp = path.with_name(f".tmp-{path.name}-{secrets.token_hex(6)}")
        try:
            with open(tmp, "xb") as fh:
                if isinstance(data, bytes | bytearray | memoryview):
                    fh.write(data)
                else:
                    fh.writelines(data)  # no joined copy of a pack in memory
                fh.flush()
                os.fsync(fh.fileno())
            if exclusive:
                # link() fails if the target exists, so two writers can never clobber.
                os.link(tmp, path)
                os.unlink(tmp)
            else:
                os.replace(tmp, path)
            fsync_dir(path.parent)
        except FileExistsError as exc:
            raise ObjectExists(f"object {path.name} already exists") from exc
        except OSError as exc:
            _raise_os_error(exc, path.name)
        finally:
            # Never mask the error above: the temporary file may not exist, or even its
            # folder (NotADirectoryError).
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                tmp.unlink()

    def create(self, name: str, data: bytes | Sequence[bytes]) -> None:
        self._write_atomic(self._path(name), data, exclusive=True)

    def replace(self, name: str, data: bytes) -> None:
        self._write_atomic(self._path(name), data, exclusive=False)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            with open(self._path(name), "rb") as fh:
                if offset:
                    fh.seek(offset)
                return fh.read() if length is None else fh.read(length)
        except OSError as exc:
            _raise_os_error(exc, name)
            raise  # unreachable; keeps type checkers content

    def stat(self, name: str) -> ObjectInfo:
        try:
            return ObjectInfo(name, self._path(name).stat().st_size)
        except OSError as exc:
            _raise_os_error(exc, name)
            raise

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def list(self, folder: str) -> Iterator[ObjectInfo]:
        base = self.root / folder
        dirs = sorted(base.iterdir()) if folder == "data" else [base]
        for directory in dirs:
            if not directory.is_dir():
                continue
            with os.scandir(directory) as it:
                for entry in it:
                    if entry.name.startswith(".") or not entry.is_file():
                        continue
                    try:
                        size = entry.stat().st_size
                    except FileNotFoundError:
                        continue  # removed since the directory was read (a released lock)
                    yield ObjectInfo(f"{folder}/{entry.name}", size)

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink()
            fsync_dir(path.parent)
        except OSError as exc:
            _raise_os_error(exc, name)



def open_backend(location: str) -> Backend:
    """Turn a repository location string into a backend (only local paths so far)."""
    if "://" in location and not location.startswith("file://"):
        raise BackendError(f"unsupported repository location {location!r}")
    return LocalBackend(location.removeprefix("file://"))
