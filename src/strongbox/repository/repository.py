"""The repository: deduplicated, compressed, sealed blobs in packs, plus snapshots.

This is the one object the rest of Strongbox uses to store and read backup data. It knows
nothing about files, databases or HTTP: it stores blobs (data chunks and trees), lists and
reads snapshots, and hands out the chunker configured for this repository.

Write order is what keeps every crash harmless: packs are stored first, then an index file
describing them, then the snapshot that references them. A crash before the snapshot
leaves only unreferenced packs, which ``prune`` removes; earlier snapshots are untouched.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import zstandard
from pyfastcdc import FastCDC

from strongbox.errors import (
    BlobNotFound,
    IntegrityError,
    InvalidRequest,
    ObjectExists,
    ObjectNotFound,
    RepositoryExists,
    RepositoryNotFound,
    SnapshotNotFound,
    WrongPassphrase,
)
from strongbox.repository import compression
from strongbox.repository.backend import Backend
from strongbox.repository.crypto import (
    AeadCipher,
    Cipher,
    MasterKey,
    PlainCipher,
    slot_label,
    storage_id,
    unwrap_master_key,
    wrap_master_key,
)
from strongbox.repository.index import Index, IndexFile
from strongbox.repository.pack import BlobType, PackedBlob, PackWriter
from strongbox.repository.snapshot import Snapshot
from strongbox.repository.tree import Tree

FORMAT_VERSION = 1
DEFAULT_PACK_SIZE = 16 * 1024 * 1024
DEFAULT_CHUNK_AVG = 1024 * 1024
DEFAULT_COMPRESSION = 3


@dataclass
class RepoConfig:
    id: str
    encrypted: bool
    chunk_min: int
    chunk_avg: int
    chunk_max: int
    compression_level: int = DEFAULT_COMPRESSION
    pack_size: int = DEFAULT_PACK_SIZE
    version: int = FORMAT_VERSION
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> RepoConfig:
        return cls(**json.loads(data))


@dataclass(frozen=True)
class KeySlot:
    id: str
    label: str
    in_use: bool


def _chunk_bounds(avg: int) -> tuple[int, int, int]:
    # pyfastcdc's effective mean is avg_size + min_size; split the target between them.
    if not 64 * 1024 <= avg <= 8 * 1024 * 1024:
        raise InvalidRequest("chunk size must be between 64 KiB and 8 MiB")
    return avg // 4, avg - avg // 4, avg * 4


class Repository:
    """An open repository. Thread-safe for concurrent :meth:`save_blob` calls."""

    def __init__(self, backend: Backend, config: RepoConfig, cipher: Cipher,
                 master: MasterKey | None, key_slot: str | None) -> None:
        self.backend = backend
        self.config = config
        self.cipher = cipher
        self._master = master
        self.key_slot = key_slot
        self.index = Index()
        self._lock = threading.Lock()
        self._pending: set[bytes] = set()
        self._packers: dict[BlobType, PackWriter] = {}
        self._unsaved = IndexFile()
        self._tree_cache: OrderedDict[bytes, Tree] = OrderedDict()
        self.stats = {"blobs_new": 0, "bytes_new_raw": 0, "bytes_new_stored": 0}

    # --- creating and opening -----------------------------------------------------------

    @classmethod
    def init(cls, backend: Backend, passphrase: str | None, *,
             chunk_avg: int = DEFAULT_CHUNK_AVG, compression_level: int = DEFAULT_COMPRESSION,
             pack_size: int = DEFAULT_PACK_SIZE) -> Repository:
        """Create a new repository. ``passphrase`` None makes an unencrypted one."""
        if backend.is_initialised():
            raise RepositoryExists(f"a repository already exists at {backend.location}")
        if not 0 <= compression_level <= 19:
            raise InvalidRequest("compression level must be between 0 and 19")
        if passphrase is not None and not passphrase:
            raise InvalidRequest("the passphrase must not be empty")
        cmin, cavg, cmax = _chunk_bounds(chunk_avg)
        config = RepoConfig(id=secrets.token_hex(16), encrypted=passphrase is not None,
                            chunk_min=cmin, chunk_avg=cavg, chunk_max=cmax,
                            compression_level=compression_level, pack_size=pack_size)
        backend.initialise()
        master: MasterKey | None = None
        cipher: Cipher = PlainCipher()
        slot = None
        if passphrase is not None:
            master = MasterKey.generate()
            cipher = AeadCipher(master)
            slot_doc = wrap_master_key(master, passphrase, label="initial")
            slot = storage_id(slot_doc)
            backend.create(f"keys/{slot}", slot_doc)
        # config last: its presence is what marks the repository as initialised.
        backend.create("config", _config_envelope(config, cipher))
        return cls(backend, config, cipher, master, slot)

    @classmethod
    def open(cls, backend: Backend, passphrase: str | None) -> Repository:
        if not backend.is_initialised():
            raise RepositoryNotFound(f"no repository at {backend.location}")
        envelope = json.loads(backend.get("config"))
        if not envelope.get("encrypted"):
            config = RepoConfig.from_json(base64.b64decode(envelope["config"]))
            repo = cls(backend, config, PlainCipher(), None, None)
        else:
            if not passphrase:
                raise WrongPassphrase("this repository is encrypted: a passphrase is needed")
            master, slot = _unlock(backend, passphrase)
            cipher = AeadCipher(master)
            sealed = base64.b64decode(envelope["config"])
            config = RepoConfig.from_json(cipher.open(sealed, "config"))
            repo = cls(backend, config, cipher, master, slot)
        if config.version > FORMAT_VERSION:
            raise IntegrityError(
                f"repository format {config.version} is newer than this Strongbox supports")
        repo.load_index()
        return repo

    # --- keys -----------------------------------------------------------------------------

    def list_keys(self) -> list[KeySlot]:
        return [
            KeySlot(obj.name.split("/", 1)[1],
                    slot_label(self.backend.get(obj.name)),
                    obj.name == f"keys/{self.key_slot}")
            for obj in self.backend.list("keys")
        ]

    def add_key(self, passphrase: str, label: str = "") -> str:
        if self._master is None:
            raise InvalidRequest("an unencrypted repository has no keys")
        if not passphrase:
            raise InvalidRequest("the passphrase must not be empty")
        doc = wrap_master_key(self._master, passphrase, label=label)
        slot = storage_id(doc)
        self.backend.create(f"keys/{slot}", doc)
        return slot

    def remove_key(self, slot_id: str) -> None:
        slots = [k.id for k in self.list_keys()]
        matches = [s for s in slots if s.startswith(slot_id)] if slot_id else []
        if len(matches) != 1:
            raise InvalidRequest(f"no single key matches {slot_id!r}")
        if len(slots) == 1:
            raise InvalidRequest("refusing to remove the last key: the data would be lost")
        self.backend.delete(f"keys/{matches[0]}")

    def change_passphrase(self, new_passphrase: str) -> str:
        """Add a slot for the new passphrase, then remove the one used to open."""
        new = self.add_key(new_passphrase, label="rotated")
        if self.key_slot:
            self.backend.delete(f"keys/{self.key_slot}")
        self.key_slot = new
        return new

    # --- blobs ----------------------------------------------------------------------------

    def chunker(self) -> FastCDC:
        seed = self._master.chunker_seed if self._master else 0
        return FastCDC(self.config.chunk_avg, min_size=self.config.chunk_min,
                       max_size=self.config.chunk_max, seed=seed)

    def blob_id(self, data: bytes | memoryview) -> bytes:
        return self.cipher.blob_id(data)

    def has_blob(self, blob_id: bytes) -> bool:
        with self._lock:
            return blob_id in self.index or blob_id in self._pending

    def save_blob(self, blob_type: BlobType, data: bytes | memoryview,
                  blob_id: bytes | None = None) -> tuple[bytes, bool]:
        """Store ``data`` unless already present. Returns (id, whether it was new)."""
        if blob_id is None:
            blob_id = self.cipher.blob_id(data)
        with self._lock:
            if blob_id in self.index or blob_id in self._pending:
                return blob_id, False
            self._pending.add(blob_id)
        # Compression and sealing run outside the lock: zstd, AES-GCM and BLAKE3 release
        # the GIL, which is what lets backup threads use both cores.
        sealed = self.cipher.seal(compression.encode(data, self.config.compression_level))
        full: PackWriter | None = None
        with self._lock:
            packer = self._packers.setdefault(blob_type, PackWriter(self.cipher))
            packer.add(blob_id, blob_type, sealed, len(data))
            self.stats["blobs_new"] += 1
            self.stats["bytes_new_raw"] += len(data)
            self.stats["bytes_new_stored"] += len(sealed)
            if packer.size >= self.config.pack_size:
                full = self._packers.pop(blob_type)
        if full is not None:
            self._store_pack(full)
        return blob_id, True

    def _store_pack(self, packer: PackWriter) -> None:
        pack_id, data = packer.finish()
        # ObjectExists: identical content is already stored under the same hash.
        with contextlib.suppress(ObjectExists):
            self.backend.create(f"data/{pack_id}", data)
        with self._lock:
            self.index.add_pack(pack_id, packer.blobs)
            self._unsaved.packs[pack_id] = packer.blobs
            self._pending.difference_update(b.blob_id for b in packer.blobs)

    def flush(self) -> None:
        """Store open packs and an index file for everything stored since the last flush."""
        with self._lock:
            packers = list(self._packers.values())
            self._packers.clear()
        for packer in packers:
            if len(packer):
                self._store_pack(packer)
        with self._lock:
            unsaved, self._unsaved = self._unsaved, IndexFile()
        if unsaved.packs:
            self.save_index(unsaved)

    def load_blob(self, blob_type: BlobType, blob_id: bytes) -> bytes:
        found = self.index.lookup(blob_id)
        if found is None:
            raise BlobNotFound(f"blob {blob_id.hex()} is not in the index")
        pack_id, blob = found
        sealed = self.backend.get(f"data/{pack_id}", blob.offset, blob.length)
        return self.decode_blob(pack_id, blob, sealed)

    def decode_blob(self, pack_id: str, blob: PackedBlob, sealed: bytes) -> bytes:
        """Open, decompress and verify one blob read from a pack."""
        what = f"blob {blob.blob_id.hex()} in pack {pack_id}"
        if len(sealed) != blob.length:
            raise IntegrityError(f"{what}: truncated")
        try:
            data = compression.decode(self.cipher.open(sealed, what), blob.raw_length)
        except (ValueError, zstandard.ZstdError) as exc:
            raise IntegrityError(f"{what}: cannot decompress ({exc})") from exc
        if self.cipher.blob_id(data) != blob.blob_id:
            raise IntegrityError(f"{what}: content does not match its id")
        return data

    def save_stream(self, reader: Any, progress: Any = None,
                    workers: int = 1) -> tuple[list[str], int]:
        """Chunk a readable binary stream into data blobs; return (blob ids, total bytes).

        ``workers`` above 1 compresses and seals that many chunks at once on other threads
        (for one large stream such as a database's page copy); the ids stay in order.
        """
        if workers > 1:
            return self._save_stream_parallel(reader, progress, workers)
        content: list[str] = []
        size = 0
        for chunk in self.chunker().cut_stream(reader):
            blob_id, _ = self.save_blob(BlobType.DATA, chunk.data)
            content.append(blob_id.hex())
            size += chunk.length
            if progress is not None:
                progress.check_cancelled()
                progress.advance(nbytes=chunk.length)
        return content, size

    def _save_stream_parallel(self, reader: Any, progress: Any,
                              workers: int) -> tuple[list[str], int]:
        content: list[str] = []
        size = 0
        # At most two chunks per worker are in flight: memory stays a few chunks large.
        in_flight: deque[tuple[Future[tuple[bytes, bool]], int]] = deque()

        def collect_one() -> None:
            nonlocal size
            future, length = in_flight.popleft()
            content.append(future.result()[0].hex())
            size += length
            if progress is not None:
                progress.advance(nbytes=length)

        with ThreadPoolExecutor(workers, thread_name_prefix="strongbox-blob") as pool:
            try:
                for chunk in self.chunker().cut_stream(reader):
                    if progress is not None:
                        progress.check_cancelled()
                    # The chunker reuses its buffer for the next chunk: hand over a copy.
                    data = bytes(chunk.data)
                    in_flight.append((pool.submit(self.save_blob, BlobType.DATA, data),
                                      chunk.length))
                    while len(in_flight) >= 2 * workers:
                        collect_one()
                while in_flight:
                    collect_one()
            except BaseException:
                for future, _ in in_flight:
                    future.cancel()
                raise
        return content, size

    def read_stream(self, content: list[str]) -> Iterator[bytes]:
        """The data of a stream or file node, chunk by chunk, each verified."""
        for blob_hex in content:
            yield self.load_blob(BlobType.DATA, bytes.fromhex(blob_hex))

    # --- trees ----------------------------------------------------------------------------

    def save_tree(self, tree: Tree) -> str:
        blob_id, _ = self.save_blob(BlobType.TREE, tree.to_bytes())
        return blob_id.hex()

    def load_tree(self, tree_id: str) -> Tree:
        key = bytes.fromhex(tree_id)
        cached = self._tree_cache.get(key)
        if cached is not None:
            self._tree_cache.move_to_end(key)
            return cached
        tree = Tree.from_bytes(self.load_blob(BlobType.TREE, key))
        self._tree_cache[key] = tree
        if len(self._tree_cache) > 256:
            self._tree_cache.popitem(last=False)
        return tree

    # --- sealed documents: index files and snapshots ---------------------------------------

    def _seal_doc(self, data: bytes) -> bytes:
        return self.cipher.seal(compression.encode(data, self.config.compression_level or 3))

    def _open_doc(self, name: str) -> bytes:
        stored = self.backend.get(name)
        if storage_id(stored) != name.rsplit("/", 1)[1]:
            raise IntegrityError(f"{name}: content does not match its name (damaged)")
        payload = self.cipher.open(stored, name)
        return compression.decode(payload, 1 << 31)

    def save_index(self, index_file: IndexFile) -> str:
        stored = self._seal_doc(index_file.to_json())
        name = storage_id(stored)
        self.backend.create(f"index/{name}", stored)
        return name

    def read_index_files(self) -> dict[str, IndexFile]:
        files = {}
        for obj in self.backend.list("index"):
            files[obj.name.split("/", 1)[1]] = IndexFile.from_json(self._open_doc(obj.name))
        return files

    def load_index(self) -> None:
        files = self.read_index_files()
        superseded = {s for f in files.values() for s in f.supersedes}
        index = Index()
        for name, f in files.items():
            if name in superseded:
                continue
            for pack_id, blobs in f.packs.items():
                index.add_pack(pack_id, blobs)
        self.index = index

    # --- snapshots ------------------------------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> str:
        """Flush pending data, then store the snapshot (the commit point of a backup)."""
        self.flush()
        stored = self._seal_doc(snapshot.to_bytes())
        snapshot.id = storage_id(stored)
        self.backend.create(f"snapshots/{snapshot.id}", stored)
        return snapshot.id

    def list_snapshots(self) -> list[Snapshot]:
        snaps = [
            Snapshot.from_bytes(self._open_doc(obj.name), obj.name.split("/", 1)[1])
            for obj in self.backend.list("snapshots")
        ]
        return sorted(snaps, key=lambda s: s.time)

    def snapshot_ids(self) -> list[str]:
        return [obj.name.split("/", 1)[1] for obj in self.backend.list("snapshots")]

    def load_snapshot(self, ref: str) -> Snapshot:
        """Find a snapshot by id, unique id prefix, or ``latest``."""
        if ref == "latest":
            snaps = self.list_snapshots()
            if not snaps:
                raise SnapshotNotFound("the repository has no snapshots")
            return snaps[-1]
        matches = [s for s in self.snapshot_ids() if s.startswith(ref)] if ref else []
        if not matches:
            raise SnapshotNotFound(f"no snapshot {ref!r}")
        if len(matches) > 1:
            raise InvalidRequest(f"snapshot prefix {ref!r} is ambiguous")
        name = f"snapshots/{matches[0]}"
        return Snapshot.from_bytes(self._open_doc(name), matches[0])

    def delete_snapshot(self, snapshot_id: str) -> None:
        try:
            self.backend.delete(f"snapshots/{snapshot_id}")
        except ObjectNotFound as exc:
            raise SnapshotNotFound(f"no snapshot {snapshot_id!r}") from exc

    def iter_tree(self, tree_id: str, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """Walk a tree depth-first, yielding (path, node) for every entry."""
        for node in self.load_tree(tree_id).nodes:
            path = f"{prefix}/{node.name}" if prefix else node.name
            yield path, node
            if node.type == "dir" and node.subtree:
                yield from self.iter_tree(node.subtree, path)


def needs_passphrase(backend: Backend) -> bool:
    """Whether opening the repository at ``backend`` takes a passphrase.

    A missing repository answers False, so the caller goes straight on to
    :meth:`Repository.open` and its clear "no repository" error instead of asking first.
    """
    if not backend.is_initialised():
        return False
    return bool(json.loads(backend.get("config")).get("encrypted"))


def _config_envelope(config: RepoConfig, cipher: Cipher) -> bytes:
    body = cipher.seal(config.to_json())
    return json.dumps({"version": FORMAT_VERSION, "encrypted": cipher.encrypted,
                       "config": base64.b64encode(body).decode()}).encode()


def _unlock(backend: Backend, passphrase: str) -> tuple[MasterKey, str]:
    for obj in backend.list("keys"):
        try:
            return unwrap_master_key(backend.get(obj.name), passphrase), obj.name.split("/")[1]
        except WrongPassphrase:
            continue
    raise WrongPassphrase("wrong passphrase: no key of this repository opens with it")
