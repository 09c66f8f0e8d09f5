"""The archive format and its encryption, without HTTP (strongbox.services.archive_*)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tarfile
from pathlib import Path

import pytest
import zstandard

from strongbox.services.archive_crypto import (
    MAGIC,
    WrongArchivePassphrase,
    decrypt_file,
    encrypt_file,
)
from strongbox.services.archive_format import (
    ArchiveInvalid,
    ArchiveLimits,
    ArchiveTooLarge,
    CompressionBomb,
    IncompatibleVersion,
    UnsafeArchiveEntry,
    check_entry_name,
    compatibility,
    inspect_archive,
)

LIMITS = ArchiveLimits(max_uncompressed_bytes=1 << 30, max_ratio=100.0,
                       ratio_grace_bytes=1 << 20)


def test_compatibility() -> None:
    assert compatibility("1.0") == compatibility("1.7") == "compatible"
    assert compatibility("0.9") == "needs_migration"
    assert compatibility("2.0") == compatibility("x") == compatibility(1) == "incompatible"


@pytest.mark.parametrize("name", ["../x", "a/../b", "/etc/passwd", "a//b", "./a", "a/.",
                                  "a\x00b", "C:/x", "a\\b", "", "a/"])
def test_unsafe_names(name: str) -> None:
    with pytest.raises(UnsafeArchiveEntry):
        check_entry_name(name)


def test_safe_names() -> None:
    for name in ("a", "tables/projects", "dir/.hidden", "a..b"):
        assert check_entry_name(name) == name


def zstd_archive(path: Path, entries: list[dict[str, object]],
                 members: list[tuple[str, bytes]], version: str = "1.0") -> Path:
    doc = {"format": "strongbox-archive", "version": version, "backup": {},
           "snapshot": {"kind": "files", "paths": [], "tags": [], "summary": {}},
           "contents": {}, "entries": entries}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in [("manifest.json", json.dumps(doc).encode()), *members]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(zstandard.ZstdCompressor(level=19).compress(raw.getvalue()))
    return path


def file_entry(path: str, data: bytes) -> dict[str, object]:
    return {"path": path, "type": "file", "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}


def test_zstd_bomb_stops_early(tmp_path: Path) -> None:
    zeros = bytes(32 << 20)
    archive = zstd_archive(tmp_path / "bomb.tar.zst", [file_entry("z", zeros)],
                           [("data/z", zeros)])
    assert archive.stat().st_size < 64 * 1024
    with pytest.raises(CompressionBomb):
        inspect_archive(archive, LIMITS)


def test_declared_size_over_the_limit(tmp_path: Path) -> None:
    entry = {**file_entry("big", b""), "size": 2 << 30}
    archive = zstd_archive(tmp_path / "big.tar.zst", [entry], [])
    with pytest.raises(ArchiveTooLarge):
        inspect_archive(archive, LIMITS)


def test_valid_zstd_and_version_checks(tmp_path: Path) -> None:
    data = os.urandom(1000)
    good = zstd_archive(tmp_path / "ok.tar.zst", [file_entry("f", data)], [("data/f", data)])
    info = inspect_archive(good, LIMITS)
    assert info.compression == "zstd" and info.compatibility == "compatible"
    newer = zstd_archive(tmp_path / "new.tar.zst", [file_entry("f", data)],
                         [("data/f", data)], version="1.3")
    assert inspect_archive(newer, LIMITS).warnings
    for version, compat in (("0.5", "needs_migration"), ("3.0", "incompatible")):
        old = zstd_archive(tmp_path / f"{version}.tar.zst", [], [], version=version)
        with pytest.raises(IncompatibleVersion) as raised:
            inspect_archive(old, LIMITS)
        assert raised.value.details["compatibility"] == compat


def test_entry_needs_its_directory_first(tmp_path: Path) -> None:
    archive = zstd_archive(tmp_path / "orphan.tar.zst", [file_entry("d/f", b"x")],
                           [("data/d/f", b"x")])
    with pytest.raises(ArchiveInvalid):
        inspect_archive(archive, LIMITS)


def chunks_of(sealed: bytes) -> tuple[bytes, list[bytes]]:
    (length,) = struct.unpack(">I", sealed[8:12])
    head, rest = sealed[:12 + length], sealed[12 + length:]
    chunks = []
    while rest:
        (size,) = struct.unpack(">I", rest[:4])
        chunks.append(rest[:4 + size])
        rest = rest[4 + size:]
    return head, chunks


def test_encryption_round_trip_and_tampering(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom((5 << 20) // 2))  # three chunks
    sealed_path = tmp_path / "sealed"
    encrypt_file(plain, sealed_path, "pw")
    sealed = sealed_path.read_bytes()
    assert sealed.startswith(MAGIC)
    decrypt_file(sealed_path, tmp_path / "out", "pw", 1 << 30)
    assert (tmp_path / "out").read_bytes() == plain.read_bytes()

    head, chunks = chunks_of(sealed)
    assert len(chunks) == 3
    cases = {"dropped final chunk": head + b"".join(chunks[:2]),
             "swapped chunks": head + chunks[1] + chunks[0] + chunks[2],
             "flipped bit": head + chunks[0] + chunks[1][:-1]
             + bytes([chunks[1][-1] ^ 1]) + chunks[2]}
    for name, data in cases.items():
        broken = tmp_path / name.replace(" ", "-")
        broken.write_bytes(data)
        with pytest.raises(ArchiveInvalid):
            decrypt_file(broken, tmp_path / (broken.name + ".out"), "pw", 1 << 30)
    with pytest.raises(WrongArchivePassphrase):
        decrypt_file(sealed_path, tmp_path / "wrong.out", "nope", 1 << 30)
    with pytest.raises(ArchiveTooLarge):
        decrypt_file(sealed_path, tmp_path / "limit.out", "pw", 1 << 20)


def test_seeded_encryption_is_deterministic(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(b"archive bytes")
    one, two = tmp_path / "one", tmp_path / "two"
    encrypt_file(plain, one, "pw", seed=b"\x01" * 32)
    encrypt_file(plain, two, "pw", seed=b"\x01" * 32)
    assert one.read_bytes() == two.read_bytes()
