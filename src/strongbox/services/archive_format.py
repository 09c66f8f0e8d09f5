"""The portable archive: one backup as a single tar file (docs/archive-format.md).

A tar stream, gzip- or zstd-compressed (or plain), whose first member is
``manifest.json`` and whose other members are the contents of the snapshot's files and
streams under ``data/<path>``, in manifest order. Directories, symlinks and hard links
live in the manifest only: nothing in an archive is ever extracted as a link.

Writing is deterministic (fixed tar headers, gzip mtime 0, fixed levels), so the same
snapshot always gives the same bytes. Reading never extracts anything: :func:`inspect_archive`
validates a whole archive (names, versions, sizes, sha256, size and ratio limits) without
writing, and :func:`import_archive` then rebuilds the snapshot in a repository.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

import zstandard

from strongbox.errors import InvalidRequest, StrongboxError
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.repository.tree import Node, Tree

FORMAT = "strongbox-archive"
VERSION = "1.0"
MANIFEST = "manifest.json"
DATA_PREFIX = "data/"
GZIP_LEVEL = 6
ZSTD_LEVEL = 3
READ_CHUNK = 1 << 16
# media type, file name suffix
COMPRESSIONS = {"gzip": ("application/gzip", ".tar.gz"), "zstd": ("application/zstd", ".tar.zst")}
ENTRY_TYPES = ("file", "stream", "dir", "symlink", "hardlink")
DATA_TYPES = ("file", "stream")
# Snapshot tags the server adds itself: not part of the backup's portable identity.
SYSTEM_TAG_PREFIXES = ("backup=", "tenant=")
_NODE_FIELDS = ("mode", "mtime_ns", "uid", "gid", "size", "inode", "device")


# --- errors ------------------------------------------------------------------------------


class ArchiveInvalid(InvalidRequest):
    """The file is not a valid Strongbox archive."""

    code = "INVALID_ARCHIVE"


class ArchiveTruncated(ArchiveInvalid):
    code = "ARCHIVE_TRUNCATED"


class UnsafeArchiveEntry(ArchiveInvalid):
    """A member name or type that could write outside an extraction directory."""

    code = "UNSAFE_ARCHIVE_ENTRY"


class ArchiveChecksumMismatch(ArchiveInvalid):
    code = "CHECKSUM_MISMATCH"


class IncompatibleVersion(StrongboxError):
    code = "INCOMPATIBLE_VERSION"
    http_status = 422


class ArchiveTooLarge(StrongboxError):
    """The archive unpacks to more than the server accepts."""

    code = "FILE_TOO_LARGE"
    http_status = 413


class CompressionBomb(ArchiveTooLarge):
    """The archive expands far more than real backups do."""

    code = "COMPRESSION_RATIO_EXCEEDED"


# --- shapes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveLimits:
    max_uncompressed_bytes: int
    max_ratio: float
    ratio_grace_bytes: int = 16 << 20  # small archives of headers compress very well
    max_manifest_bytes: int = 64 << 20
    max_entries: int = 1_000_000


@dataclass
class ArchiveInfo:
    manifest: dict[str, Any]
    version: str
    compatibility: str  # compatible | needs_migration | incompatible
    compression: str  # gzip | zstd | none
    uncompressed_bytes: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def entries(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.manifest["entries"]
        return entries


def compatibility(version: Any) -> str:
    """"1.x" compatible, "0.x" needs_migration, anything else incompatible."""
    major = str(version).split(".", 1)[0] if isinstance(version, str) else ""
    return {"1": "compatible", "0": "needs_migration"}.get(major, "incompatible")


def check_entry_name(path: Any) -> str:
    """A relative, normalised path: no absolute path, drive, ``..``, ``.``, NUL, backslash."""
    if not isinstance(path, str) or not path or len(path) > 4096:
        raise UnsafeArchiveEntry(f"invalid entry name {path!r}")
    if "\x00" in path or "\\" in path or path.startswith("/") or (
            len(path) > 1 and path[1] == ":"):
        raise UnsafeArchiveEntry(f"unsafe entry name {path!r}")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise UnsafeArchiveEntry(f"unsafe entry name {path!r}: empty, '.' or '..' component")
    return path


# --- writing -----------------------------------------------------------------------------


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (one repository stream)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = b""
        self._offset = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        if size < 0:
            rest = [self._chunk[self._offset:], *self._chunks]
            self._chunk, self._offset = b"", 0
            return b"".join(rest)
        parts: list[bytes] = []
        wanted = size
        while wanted > 0:
            if self._offset >= len(self._chunk):
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._chunk, self._offset = chunk, 0
                continue
            piece = self._chunk[self._offset:self._offset + wanted]
            self._offset += len(piece)
            wanted -= len(piece)
            parts.append(piece)
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _sha256(repo: Repository, content: list[str]) -> str:
    digest = hashlib.sha256()
    for chunk in repo.read_stream(content):
        digest.update(chunk)
    return digest.hexdigest()


def portable_tags(tags: list[str]) -> list[str]:
    return [t for t in tags if not t.startswith(SYSTEM_TAG_PREFIXES)]


def build_manifest(repo: Repository, snapshot: Snapshot, backup: dict[str, Any]
                   ) -> tuple[dict[str, Any], list[tuple[str, Node]]]:
    """The manifest and the (path, node) pairs whose data follows it. Reads every data
    stream once to hash it (the manifest comes first, so hashes are needed up front)."""
    entries: list[dict[str, Any]] = []
    data: list[tuple[str, Node]] = []
    for path, node in repo.iter_tree(snapshot.tree):
        entry: dict[str, Any] = {"path": path, "type": node.type}
        for name in _NODE_FIELDS:
            entry[name] = getattr(node, name)
        entry["link_target"] = node.link_target
        entry["meta"] = node.meta
        entry["sha256"] = None
        if node.type in DATA_TYPES:
            entry["sha256"] = _sha256(repo, node.content)
            data.append((path, node))
        entries.append(entry)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "backup": backup,
        "snapshot": {"kind": snapshot.kind, "paths": snapshot.paths, "time": snapshot.time,
                     "hostname": snapshot.hostname, "username": snapshot.username,
                     "tags": portable_tags(snapshot.tags), "summary": snapshot.summary},
        "contents": backup.get("contents") or {},
        "entries": entries,
    }
    return manifest, data


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_archive(repo: Repository, snapshot: Snapshot, backup: dict[str, Any],
                  out: BinaryIO, compression: str = "gzip") -> None:
    """Stream the archive of ``snapshot`` to ``out`` (memory: one chunk at a time)."""
    manifest, data = build_manifest(repo, snapshot, backup)
    raw: IO[bytes]
    if compression == "gzip":
        raw = gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0,  # type: ignore[assignment]
                            compresslevel=GZIP_LEVEL)
    elif compression == "zstd":
        raw = zstandard.ZstdCompressor(level=ZSTD_LEVEL).stream_writer(out, closefd=False)
    else:
        raise InvalidRequest(f"unknown archive compression {compression!r}: gzip or zstd")
    try:
        with tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            body = json.dumps(manifest, sort_keys=True, indent=1).encode()
            tar.addfile(_tarinfo(MANIFEST, len(body)), io.BytesIO(body))
            for path, node in data:
                tar.addfile(_tarinfo(DATA_PREFIX + path, node.size),
                            _ChunkReader(repo.read_stream(node.content)))
    finally:
        raw.close()


# --- reading -----------------------------------------------------------------------------


class _Counting(io.RawIOBase):
    """Counts the compressed bytes the decompressor has consumed."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        data = self.inner.read(size)
        self.count += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class _Limited(io.RawIOBase):
    """The decompressed stream, aborting as soon as size or ratio goes over the limits."""

    def __init__(self, inner: IO[bytes], counted: _Counting, limits: ArchiveLimits) -> None:
        self.inner = inner
        self.counted = counted
        self.limits = limits
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        data = self.inner.read(size if size >= 0 else READ_CHUNK)
        self.count += len(data)
        limits = self.limits
        if self.count > limits.max_uncompressed_bytes:
            raise ArchiveTooLarge(f"the archive unpacks to more than "
                                  f"{limits.max_uncompressed_bytes} bytes",
                                  details={"limit_bytes": limits.max_uncompressed_bytes})
        if self.count > limits.ratio_grace_bytes:
            ratio = self.count / max(self.counted.count, 1)
            if ratio > limits.max_ratio:
                raise CompressionBomb(
                    f"the archive expands more than {limits.max_ratio:g}:1 "
                    f"({self.count} bytes from {self.counted.count}): refused as a "
                    "compression bomb", details={"max_ratio": limits.max_ratio})
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def sniff_compression(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if len(head) == 512 and head[257:262] == b"ustar":
        return "none"
    raise ArchiveInvalid("not a Strongbox archive: expected a gzip, zstd or tar file")


_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, zstandard.ZstdError)


class _Reader:
    """One pass over an archive file: members in order, with limits enforced."""

    def __init__(self, path: Path, limits: ArchiveLimits) -> None:
        self.compression = sniff_compression(path)
        self._file = path.open("rb")
        self.counted = _Counting(self._file)  # type: ignore[arg-type]
        plain: IO[bytes]
        if self.compression == "gzip":
            plain = gzip.GzipFile(fileobj=self.counted, mode="rb")  # type: ignore[assignment]
        elif self.compression == "zstd":
            plain = zstandard.ZstdDecompressor().stream_reader(
                self.counted)  # type: ignore[arg-type]
        else:
            plain = self.counted  # type: ignore[assignment]
        self.plain = plain
        self.limited = _Limited(plain, self.counted, limits)
        # Closed by close(), with the file it reads.
        self.tar = tarfile.open(fileobj=self.limited, mode="r|")  # noqa: SIM115

    def members(self) -> Iterator[tarfile.TarInfo]:
        yield from self.tar

    def read_member(self, member: tarfile.TarInfo) -> Iterator[bytes]:
        stream = self.tar.extractfile(member)
        if stream is None:
            raise UnsafeArchiveEntry(f"member {member.name!r} is not a regular file")
        remaining = member.size
        while remaining > 0:
            chunk = stream.read(min(READ_CHUNK, remaining))
            if not chunk:
                raise ArchiveTruncated(f"the archive ends inside member {member.name!r}")
            remaining -= len(chunk)
            yield chunk

    def finish(self) -> None:
        """Read to the end of the compressed stream: checks its trailer (gzip CRC)."""
        while self.limited.read(READ_CHUNK):
            pass

    def close(self) -> None:
        self.tar.close()
        self._file.close()


def _check_member(member: tarfile.TarInfo) -> str:
    check_entry_name(member.name)
    if not member.isreg():
        kind = ("symlink" if member.issym() else "hard link" if member.islnk()
                else "device" if member.isdev() else "directory" if member.isdir()
                else "special file")
        raise UnsafeArchiveEntry(f"member {member.name!r} is a {kind}: an archive holds "
                                 "regular files only")
    return member.name


def _check_manifest(manifest: Any, limits: ArchiveLimits) -> ArchiveInfo:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveInvalid(f"manifest.json does not describe a {FORMAT}")
    version = manifest.get("version")
    compat = compatibility(version)
    if compat != "compatible":
        raise IncompatibleVersion(
            f"archive format version {version!r} is not supported by this server "
            f"(it reads {VERSION.split('.')[0]}.x)" + (
                "; no migration tool for 0.x archives exists yet"
                if compat == "needs_migration" else ""),
            details={"version": str(version), "compatibility": compat})
    info = ArchiveInfo(manifest, str(version), compat, "none")
    if version != VERSION:
        info.warnings.append(f"archive version {version} is newer than {VERSION}: fields "
                             "this server does not know are ignored")
    entries = manifest.get("entries")
    snapshot = manifest.get("snapshot")
    if not isinstance(entries, list) or not isinstance(snapshot, dict):
        raise ArchiveInvalid("manifest.json needs 'snapshot' and 'entries'")
    if not isinstance(manifest.get("backup", {}), dict):
        raise ArchiveInvalid("manifest.json: 'backup' must be an object")
    if len(entries) > limits.max_entries:
        raise ArchiveTooLarge(f"the archive has more than {limits.max_entries} entries")
    seen: dict[str, str] = {}
    total = 0
    for entry in entries:
        if not isinstance(entry, dict):
            raise ArchiveInvalid("manifest.json: every entry must be an object")
        path = check_entry_name(entry.get("path"))
        kind = entry.get("type")
        if kind not in ENTRY_TYPES:
            raise ArchiveInvalid(f"entry {path!r}: unknown type {kind!r}")
        if path in seen:
            raise ArchiveInvalid(f"entry {path!r} is listed twice")
        parent = path.rpartition("/")[0]
        if parent and seen.get(parent) != "dir":
            raise ArchiveInvalid(f"entry {path!r}: its directory is not listed before it")
        for name in _NODE_FIELDS:
            if not isinstance(entry.get(name, 0), int) or entry.get(name, 0) < 0:
                raise ArchiveInvalid(f"entry {path!r}: {name} must be a whole number")
        if kind in DATA_TYPES:
            digest = entry.get("sha256")
            if not isinstance(digest, str) or len(digest) != 64 or any(
                    c not in "0123456789abcdef" for c in digest):
                raise ArchiveInvalid(f"entry {path!r}: sha256 must be 64 hex digits")
            total += int(entry.get("size", 0))
        if kind in ("symlink", "hardlink") and not isinstance(entry.get("link_target"), str):
            raise ArchiveInvalid(f"entry {path!r}: a {kind} needs link_target")
        if entry.get("meta") is not None and not isinstance(entry["meta"], dict):
            raise ArchiveInvalid(f"entry {path!r}: meta must be an object")
        seen[path] = kind
    if total > limits.max_uncompressed_bytes:
        raise ArchiveTooLarge(f"the archive's contents are {total} bytes, more than "
                              f"{limits.max_uncompressed_bytes}",
                              details={"limit_bytes": limits.max_uncompressed_bytes})
    info.uncompressed_bytes = total
    return info


def _walk(path: Path, limits: ArchiveLimits, sink: Any = None) -> ArchiveInfo:
    """Read and verify the whole archive; ``sink(entry, chunks)`` consumes each data member
    (None: hash only). Every check runs before ``sink`` sees a member's data."""
    reader = _Reader(path, limits)
    try:
        members = reader.members()
        first = next(members, None)
        if first is None or first.name != MANIFEST:
            raise ArchiveInvalid(f"the archive's first member must be {MANIFEST}")
        _check_member(first)
        if first.size > limits.max_manifest_bytes:
            raise ArchiveTooLarge(f"{MANIFEST} is larger than {limits.max_manifest_bytes} bytes")
        try:
            manifest = json.loads(b"".join(reader.read_member(first)))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArchiveInvalid(f"{MANIFEST} is not valid JSON: {exc}") from None
        info = _check_manifest(manifest, limits)
        info.compression = reader.compression
        expected = {DATA_PREFIX + e["path"]: e for e in info.entries if e["type"] in DATA_TYPES}
        order = list(expected)
        for position, member in enumerate(members):
            name = _check_member(member)
            entry = expected.get(name)
            if entry is None:
                raise ArchiveInvalid(f"member {name!r} is not listed in {MANIFEST}")
            if position >= len(order) or order[position] != name:
                raise ArchiveInvalid(f"member {name!r} is out of order or repeated")
            if member.size != int(entry.get("size", 0)):
                raise ArchiveInvalid(f"member {name!r} is {member.size} bytes; the manifest "
                                     f"says {entry.get('size', 0)}")
            digest = hashlib.sha256()

            def chunks(member: tarfile.TarInfo = member, digest: Any = digest
                       ) -> Iterator[bytes]:
                for chunk in reader.read_member(member):
                    digest.update(chunk)
                    yield chunk

            if sink is None:
                for _ in chunks():
                    pass
            else:
                sink(entry, chunks())
            if digest.hexdigest() != entry["sha256"]:
                raise ArchiveChecksumMismatch(f"member {name!r}: sha256 does not match the "
                                              "manifest", details={"member": name})
            expected.pop(name)
        if expected:
            raise ArchiveTruncated(f"the archive ends before member "
                                   f"{next(iter(expected))!r} ({len(expected)} missing)")
        reader.finish()
        return info
    except _READ_ERRORS as exc:
        raise ArchiveTruncated(f"the archive is truncated or damaged: {exc}") from None
    finally:
        reader.close()


def inspect_archive(path: Path, limits: ArchiveLimits) -> ArchiveInfo:
    """Validate the archive at ``path`` completely, writing nothing."""
    return _walk(path, limits)


def import_archive(repo: Repository, path: Path, limits: ArchiveLimits, *,
                   tags: list[str] | None = None) -> tuple[Snapshot, ArchiveInfo]:
    """Rebuild the archive's snapshot in ``repo`` (validate with :func:`inspect_archive`
    first: a failure here leaves only unreferenced blobs, which prune removes)."""
    contents: dict[str, tuple[list[str], int]] = {}

    def store(entry: dict[str, Any], chunks: Iterator[bytes]) -> None:
        contents[entry["path"]] = repo.save_stream(_ChunkReader(chunks))

    info = _walk(path, limits, store)
    nodes: dict[str, Node] = {}
    children: dict[str, list[Node]] = {"": []}
    for entry in info.entries:
        entry_path = entry["path"]
        node = Node(name=entry_path.rpartition("/")[2], type=entry["type"],
                    link_target=entry.get("link_target"), meta=entry.get("meta"))
        for name in _NODE_FIELDS:
            setattr(node, name, int(entry.get(name, 0)))
        if node.type in DATA_TYPES:
            node.content, node.size = contents[entry_path]
        nodes[entry_path] = node
        children[entry_path.rpartition("/")[0]].append(node)
        if node.type == "dir":
            children[entry_path] = []
    # A hard link shares its first path's content (the repository stores it once).
    for node_path, node in nodes.items():
        target = nodes.get(node.link_target or "") if node.type == "hardlink" else None
        if target is not None and target.type == "file":
            nodes[node_path].content = list(target.content)
    # Deepest directories first, so every subtree exists before its parent's tree.
    for dir_path in sorted((p for p, n in nodes.items() if n.type == "dir"),
                           key=lambda p: p.count("/"), reverse=True):
        nodes[dir_path].subtree = repo.save_tree(Tree(children[dir_path]))
    root = repo.save_tree(Tree(children[""]))
    doc = info.manifest["snapshot"]
    snapshot = Snapshot(tree=root, paths=list(doc.get("paths") or []),
                        tags=portable_tags(list(doc.get("tags") or [])) + list(tags or []),
                        kind=str(doc.get("kind") or "files"),
                        summary=dict(doc.get("summary") or {}))
    for name in ("time", "hostname", "username"):
        if isinstance(doc.get(name), str):
            setattr(snapshot, name, doc[name])
    repo.save_snapshot(snapshot)
    return snapshot, info
