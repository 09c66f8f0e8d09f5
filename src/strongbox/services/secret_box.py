"""Secrets at rest in the catalog (DSN passwords, webhook secrets) sealed with a server key.

The catalog may live in a shared PostgreSQL or be copied into a support ticket; the
secrets in it should not be readable there. They are sealed with Fernet (AES-128-CBC +
HMAC-SHA256, from ``cryptography``) under a key kept in the data directory
(``secret.key``, mode 0600, made at first use) or given as ``STRONGBOX_SECRET_KEY``.
Losing the key means re-entering the sealed secrets; backups are not affected (the
repository has its own keys).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from strongbox.errors import StrongboxError
from strongbox.fsutil import fsync_dir

PREFIX = "sealed:v1:"


class SecretUnreadable(StrongboxError):
    code = "SECRET_UNREADABLE"


class SecretBox:
    def __init__(self, key_file: Path, key: str | None = None) -> None:
        self._key_file = key_file
        self._key = key
        self._fernet: Fernet | None = None
        self._lock = threading.Lock()

    def seal(self, secret: str) -> str:
        return PREFIX + self._get().encrypt(secret.encode()).decode()

    def open(self, value: str) -> str:
        """The secret of a sealed value; a value stored before sealing is returned as is."""
        if not value.startswith(PREFIX):
            return value
        try:
            return self._get().decrypt(value[len(PREFIX):].encode()).decode()
        except InvalidToken:
            raise SecretUnreadable(
                "a stored secret cannot be opened with this server's secret key "
                f"({self._key_file}); re-enter it") from None

    @staticmethod
    def is_sealed(value: str) -> bool:
        return value.startswith(PREFIX)

    def _get(self) -> Fernet:
        with self._lock:
            if self._fernet is None:
                self._fernet = Fernet(self._key or self._load_or_create())
            return self._fernet

    def _load_or_create(self) -> str:
        if self._key_file.exists():
            return self._key_file.read_text().strip()
        self._key_file.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key().decode()
        temp = self._key_file.with_name(self._key_file.name + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temp, self._key_file)  # never replace a key another process just made
        except FileExistsError:
            pass
        finally:
            temp.unlink()
        fsync_dir(self._key_file.parent)
        return self._key_file.read_text().strip()
