"""Encryption, authentication and content ids.

A repository has one random :class:`MasterKey`. Everything stored is sealed with it using
AES-256-GCM (``nonce || ciphertext || tag``); content ids are BLAKE3 hashes keyed with a
separate secret so that an id reveals nothing about the plaintext. The master key itself
is stored only wrapped: each *key slot* (``keys/<id>``) holds it encrypted under a key
derived from one passphrase with scrypt, so passphrases can be added, removed and rotated
without rewriting any data.

An unencrypted repository uses :class:`PlainCipher`: nothing is secret, but every blob id
is still the BLAKE3 hash of its plaintext and every stored file is named by the hash of
its bytes, so corruption is always detected.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from strongbox.errors import IntegrityError, WrongPassphrase

NONCE_SIZE = 12
TAG_SIZE = 16
ID_SIZE = 32

# scrypt cost: about 0.1 s and 32 MiB per unlock on a 2-core machine. Tests may lower it
# through STRONGBOX_SCRYPT_N; the value used is stored in each key slot, so a slot made
# with one cost opens under any other setting.
DEFAULT_SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


class Cipher(Protocol):
    encrypted: bool

    def seal(self, plaintext: bytes) -> bytes: ...

    def open(self, sealed: bytes, what: str) -> bytes: ...

    def blob_id(self, plaintext: bytes | memoryview) -> bytes: ...


def storage_id(data: bytes) -> str:
    """Name of a stored file: the hash of its bytes, checkable without any key."""
    return blake3.blake3(data).hexdigest()


def storage_id_of_parts(parts: Iterable[bytes]) -> str:
    """storage_id of the parts' bytes back to back, without joining them."""
    hasher = blake3.blake3()
    for part in parts:
        hasher.update(part)
    return hasher.hexdigest()


@dataclass(frozen=True)
class MasterKey:
    """The repository's secrets. Created once at ``init``; never stored unwrapped."""

    encryption_key: bytes
    id_key: bytes
    chunker_seed: int

    @classmethod
    def generate(cls) -> MasterKey:
        # The chunker seed is secret too: known cut points would leak file sizes.
        return cls(secrets.token_bytes(32), secrets.token_bytes(32),
                   secrets.randbits(63))

    def to_bytes(self) -> bytes:
        return json.dumps({
            "encryption_key": _b64(self.encryption_key),
            "id_key": _b64(self.id_key),
            "chunker_seed": self.chunker_seed,
        }).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> MasterKey:
        doc = json.loads(data)
        return cls(_unb64(doc["encryption_key"]), _unb64(doc["id_key"]),
                   int(doc["chunker_seed"]))


class AeadCipher:
    """AES-256-GCM with a random 96-bit nonce per sealed object."""

    encrypted = True

    def __init__(self, key: MasterKey) -> None:
        self._aead = AESGCM(key.encryption_key)
        self._id_key = key.id_key

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, None)

    def open(self, sealed: bytes, what: str) -> bytes:
        if len(sealed) < NONCE_SIZE + TAG_SIZE:
            raise IntegrityError(f"{what}: truncated ({len(sealed)} bytes)")
        try:
            return self._aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], None)
        except InvalidTag as exc:
            raise IntegrityError(f"{what}: authentication failed (data damaged)") from exc

    def blob_id(self, plaintext: bytes | memoryview) -> bytes:
        return blake3.blake3(plaintext, key=self._id_key, max_threads=1).digest()


class PlainCipher:
    """No secrecy; integrity still comes from content hashes checked on every read."""

    encrypted = False

    def seal(self, plaintext: bytes) -> bytes:
        return plaintext

    def open(self, sealed: bytes, what: str) -> bytes:
        return sealed

    def blob_id(self, plaintext: bytes | memoryview) -> bytes:
        return blake3.blake3(plaintext).digest()


# --- key slots ---------------------------------------------------------------------------


def _scrypt_n() -> int:
    return int(os.environ.get("STRONGBOX_SCRYPT_N", DEFAULT_SCRYPT_N))


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def wrap_master_key(master: MasterKey, passphrase: str, *, label: str = "") -> bytes:
    """A key slot document: the master key sealed under a passphrase-derived key."""
    salt = secrets.token_bytes(16)
    n = _scrypt_n()
    kek = AESGCM(_derive(passphrase, salt, n, SCRYPT_R, SCRYPT_P))
    nonce = secrets.token_bytes(NONCE_SIZE)
    return json.dumps({
        "version": 1,
        "kdf": "scrypt",
        "n": n, "r": SCRYPT_R, "p": SCRYPT_P,
        "salt": _b64(salt),
        "label": label,
        "data": _b64(nonce + kek.encrypt(nonce, master.to_bytes(), None)),
    }, indent=1).encode()


def unwrap_master_key(slot: bytes, passphrase: str) -> MasterKey:
    """Open one key slot; raise WrongPassphrase if the passphrase does not fit it."""
    doc = json.loads(slot)
    if doc.get("kdf") != "scrypt":
        raise IntegrityError(f"key slot uses unknown kdf {doc.get('kdf')!r}")
    kek = AESGCM(_derive(passphrase, _unb64(doc["salt"]), doc["n"], doc["r"], doc["p"]))
    data = _unb64(doc["data"])
    try:
        return MasterKey.from_bytes(kek.decrypt(data[:NONCE_SIZE], data[NONCE_SIZE:], None))
    except InvalidTag as exc:
        raise WrongPassphrase("wrong passphrase") from exc


def slot_label(slot: bytes) -> str:
    return str(json.loads(slot).get("label", ""))
