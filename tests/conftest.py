"""Shared fixtures: a cheap key derivation and a small-packed encrypted repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strongbox.repository.backend import LocalBackend
from strongbox.repository.repository import Repository

# The real PostgreSQL server fixture (started only by tests that ask for it).
pytest_plugins = ("tests.pg_server",)

# Set at import so subprocesses started by tests inherit it too. The cost is stored in
# each key slot, so repositories made here open under any setting.
os.environ.setdefault("STRONGBOX_SCRYPT_N", "1024")


@pytest.fixture()
def repo(tmp_path: Path) -> Repository:
    """An encrypted repository (passphrase "secret") with 64 KiB packs, so data of a few
    hundred KiB spreads over many packs."""
    return Repository.init(LocalBackend(tmp_path / "repo"), "secret", pack_size=64 * 1024)
