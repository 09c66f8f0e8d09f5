"""Optional passphrase encryption of a whole archive file (docs/archive-format.md).

An encrypted archive is the plain archive (gzip or zstd bytes) cut into chunks, each
sealed with AES-256-GCM under a key derived from the passphrase by scrypt:

    magic "SBXAENC1" | header length (4 bytes, big-endian) | header (JSON)
    then per chunk: sealed length (4 bytes, big-endian) | AES-GCM(chunk)

The nonce of chunk ``i`` is the header's 4-byte prefix followed by ``i`` (8 bytes); the
associated data is the magic, the header, ``i`` and a final-chunk flag, so chunks cannot
be reordered, dropped, moved between files, or cut off after any but the last.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from strongbox.errors import InvalidRequest
from strongbox.services.archive_format import ArchiveInvalid, ArchiveTooLarge, ArchiveTruncated

MAGIC = b"SBXAENC1"
CHUNK = 1 << 20
TAG = 16
SCRYPT_R = 8
SCRYPT_P = 1
MAX_SCRYPT_N = 1 << 20  # refuse headers that would make the server burn memory


class WrongArchivePassphrase(InvalidRequest):
    """Missing or wrong passphrase for an encrypted archive (400: not an API-key error)."""

    code = "WRONG_PASSPHRASE"


def _scrypt_n() -> int:
    return int(os.environ.get("STRONGBOX_SCRYPT_N", 1 << 15))


def _key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def _key_check(key: bytes) -> str:
    """Tells a wrong passphrase from damaged data (a one-way value of the key)."""
    return hashlib.sha256(b"strongbox-archive-key-check\x00" + key).hexdigest()[:32]


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return MAGIC + header + struct.pack(">QB", index, final)


def is_encrypted(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def encrypt_file(source: Path, target: Path, passphrase: str, *, seed: bytes | None = None
                 ) -> None:
    """Encrypt ``source`` into ``target``. With ``seed`` (the archive's SHA-256) salt and
    nonce prefix derive from it, so the same archive and passphrase always give the same
    bytes (a download can be resumed); a key and nonce then only ever meet one plaintext."""
    if not passphrase:
        raise WrongArchivePassphrase("the archive passphrase must not be empty")
    if seed is None:
        salt, prefix = os.urandom(16), os.urandom(4)
    else:
        derived = hashlib.sha256(b"strongbox-archive-encryption\x00" + seed).digest()
        salt, prefix = derived[:16], derived[16:20]
    n = _scrypt_n()
    key = _key(passphrase, salt, n, SCRYPT_R, SCRYPT_P)
    header = json.dumps({"cipher": "aes-256-gcm", "kdf": "scrypt", "n": n, "r": SCRYPT_R,
                         "p": SCRYPT_P, "salt": base64.b64encode(salt).decode(),
                         "nonce_prefix": base64.b64encode(prefix).decode(),
                         "key_check": _key_check(key), "chunk_size": CHUNK},
                        sort_keys=True).encode()
    aead = AESGCM(key)
    with source.open("rb") as src, target.open("wb") as out:
        out.write(MAGIC + struct.pack(">I", len(header)) + header)
        index = 0
        chunk = src.read(CHUNK)
        while True:
            following = src.read(CHUNK)
            final = not following
            sealed = aead.encrypt(prefix + struct.pack(">Q", index), chunk,
                                  _aad(header, index, final))
            out.write(struct.pack(">I", len(sealed)) + sealed)
            if final:
                return
            chunk, index = following, index + 1


def _read_exact(f: Any, size: int, what: str) -> bytes:
    data = f.read(size)
    if len(data) != size:
        raise ArchiveTruncated(f"the encrypted archive ends inside its {what}")
    return data


def decrypt_file(source: Path, target: Path, passphrase: str | None, max_bytes: int) -> None:
    """Decrypt ``source`` into ``target``; every chunk is authenticated before it is
    written, and a missing final chunk is a truncated archive."""
    if not passphrase:
        raise WrongArchivePassphrase("this archive is encrypted: send its passphrase")
    with source.open("rb") as src, target.open("xb") as out:
        if src.read(len(MAGIC)) != MAGIC:
            raise ArchiveInvalid("not an encrypted Strongbox archive")
        (length,) = struct.unpack(">I", _read_exact(src, 4, "header"))
        if length > 4096:
            raise ArchiveInvalid("the encrypted archive's header is too long")
        header = _read_exact(src, length, "header")
        try:
            doc = json.loads(header)
            salt = base64.b64decode(doc["salt"])
            prefix = base64.b64decode(doc["nonce_prefix"])
            n, r, p = int(doc["n"]), int(doc["r"]), int(doc["p"])
            chunk_size = int(doc["chunk_size"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ArchiveInvalid(f"the encrypted archive's header is damaged: {exc}") from None
        if doc.get("cipher") != "aes-256-gcm" or doc.get("kdf") != "scrypt" or len(prefix) != 4:
            raise ArchiveInvalid("unknown archive encryption")
        if not (1 < n <= MAX_SCRYPT_N and r * p <= 64 and 0 < chunk_size <= 16 * CHUNK):
            raise ArchiveInvalid("the encrypted archive asks for unreasonable parameters")
        key = _key(passphrase, salt, n, r, p)
        if not hmac.compare_digest(_key_check(key), str(doc.get("key_check", ""))):
            raise WrongArchivePassphrase("wrong passphrase for this archive")
        aead = AESGCM(key)
        index = written = 0
        while True:
            raw = src.read(4)
            if len(raw) != 4:
                raise ArchiveTruncated("the encrypted archive ends before its final chunk")
            (size,) = struct.unpack(">I", raw)
            if size > chunk_size + TAG:
                raise ArchiveInvalid("an encrypted chunk is larger than the header allows")
            sealed = _read_exact(src, size, "chunk")
            final = src.peek(1)[:1] == b""
            try:
                plain = aead.decrypt(prefix + struct.pack(">Q", index), sealed,
                                     _aad(header, index, final))
            except InvalidTag:
                raise ArchiveInvalid(f"encrypted chunk {index} is damaged or out of "
                                     "place") from None
            written += len(plain)
            if written > max_bytes:
                raise ArchiveTooLarge(f"the decrypted archive exceeds {max_bytes} bytes")
            out.write(plain)
            if final:
                return
            index += 1
