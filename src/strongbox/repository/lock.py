"""Repository locks: shared for backup, restore and check; exclusive for prune and forget.

A lock is a small file ``locks/<random id>`` naming host, pid and time. A taker first writes
its own lock and then looks at the others, so of two processes racing, at least one sees
the other and backs off. A lock is *stale* when its process is gone (same host, pid not
alive) or it has not been refreshed for :data:`STALE_AFTER`; stale locks are ignored and
``strongbox repo unlock`` removes them. A holder refreshes its lock in the background.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strongbox.errors import ObjectNotFound, RepositoryLocked

if TYPE_CHECKING:
    from strongbox.repository.backend import Backend

STALE_AFTER = 30 * 60.0
REFRESH_EVERY = 5 * 60.0


@dataclass(frozen=True)
class LockInfo:
    name: str
    hostname: str
    pid: int
    time: float
    exclusive: bool

    def is_stale(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        if now - self.time > STALE_AFTER:
            return True
        if self.hostname == socket.gethostname():
            return not _pid_alive(self.pid)
        return False

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        age = int(time.time() - self.time)
        return f"{kind} lock by pid {self.pid} on {self.hostname}, {age}s old"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_locks(backend: Backend) -> list[LockInfo]:
    locks: list[LockInfo] = []
    for obj in backend.list("locks"):
        try:
            doc = json.loads(backend.get(obj.name))
        except (ObjectNotFound, ValueError):
            continue  # vanished or half-visible: its owner is releasing it
        locks.append(LockInfo(obj.name, doc["hostname"], doc["pid"], doc["time"],
                              doc["exclusive"]))
    return locks


class Lock:
    """A held lock. Use as a context manager; released on exit."""

    def __init__(self, backend: Backend, *, exclusive: bool) -> None:
        self.backend = backend
        self.exclusive = exclusive
        self.name = f"locks/{secrets.token_hex(16)}"
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def _document(self) -> bytes:
        return json.dumps({"hostname": socket.gethostname(), "pid": os.getpid(),
                           "time": time.time(), "exclusive": self.exclusive}).encode()

    def acquire(self) -> Lock:
        self.backend.create(self.name, self._document())
        conflicts = [
            lk for lk in list_locks(self.backend)
            if lk.name != self.name and not lk.is_stale() and (self.exclusive or lk.exclusive)
        ]
        if conflicts:
            self.backend.delete(self.name)
            raise RepositoryLocked(
                "repository is locked: " + "; ".join(c.describe() for c in conflicts)
                + " (if that process is gone, run `strongbox repo unlock`)",
                details=[c.describe() for c in conflicts])
        self._refresher = threading.Thread(target=self._refresh, daemon=True)
        self._refresher.start()
        return self

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_EVERY):
            self.backend.replace(self.name, self._document())

    def release(self) -> None:
        self._stop.set()
        with contextlib.suppress(ObjectNotFound):
            self.backend.delete(self.name)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_stale_locks(backend: Backend, *, remove_all: bool = False) -> list[LockInfo]:
    removed = []
    for lk in list_locks(backend):
        if remove_all or lk.is_stale():
            try:
                backend.delete(lk.name)
            except ObjectNotFound:
                continue
            removed.append(lk)
    return removed
