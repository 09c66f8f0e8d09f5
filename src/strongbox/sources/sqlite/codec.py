"""Lossless encoding of database rows as a byte stream.

Rows are MessagePack arrays, concatenated. Every SQLite storage class maps to a MessagePack
type of its own (NULL → nil, INTEGER → int, REAL → float64, TEXT → str, BLOB → bin), so a
value comes back with the same type and bytes. TEXT that is not valid UTF-8 (SQLite does
not check) is kept as an extension type so it, too, survives byte for byte.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgpack

INVALID_TEXT_EXT = 1
ROWS_PER_BATCH = 2000
# One encoded row must fit the unpacker's buffer. SQLite caps a value (and a row) at
# SQLITE_MAX_LENGTH, at most 2**31 - 1 bytes; 2**32 - 1 is msgpack's own ceiling.
MAX_ROW_BYTES = 2**32 - 1


@dataclass(frozen=True)
class InvalidText:
    """A TEXT value whose bytes are not UTF-8."""

    raw: bytes


def text_factory(raw: bytes) -> str | InvalidText:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidText(raw)


def _default(value: Any) -> msgpack.ExtType:
    if isinstance(value, InvalidText):
        return msgpack.ExtType(INVALID_TEXT_EXT, value.raw)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == INVALID_TEXT_EXT:
        return InvalidText(data)
    return msgpack.ExtType(code, data)


def encode_rows(rows: Iterable[tuple[Any, ...]],
                counter: list[int] | None = None) -> Iterator[bytes]:
    """Yield the encoded stream in batches (so memory stays flat whatever the table size).

    ``counter[0]``, when given, holds the number of rows encoded once the stream ends.
    """
    packer = msgpack.Packer(default=_default, use_bin_type=True, autoreset=False)
    count = 0
    for count, row in enumerate(rows, start=1):
        packer.pack(row)
        if count % ROWS_PER_BATCH == 0:
            yield packer.bytes()
            packer.reset()
    if counter is not None:
        counter[0] = count
    tail = packer.bytes()
    if tail:
        yield tail


def encode_batches(batches: Iterable[list[tuple[Any, ...]]],
                   counter: list[int] | None = None) -> Iterator[bytes]:
    """The same stream as encode_rows, for rows that come in lists (``fetchmany``).

    A list is packed in one call, as a MessagePack array, and the array's header is cut
    off: what is left is exactly its rows packed one after the other. This keeps the
    per-row work in C, which is most of what encoding costs.
    """
    packer = msgpack.Packer(default=_default, use_bin_type=True)
    count = 0
    for batch in batches:
        if batch:
            count += len(batch)
            yield packer.pack(batch)[_array_header_size(len(batch)):]
    if counter is not None:
        counter[0] = count


def _array_header_size(length: int) -> int:
    # fixarray (1 byte) up to 15 items, array 16 (3 bytes) up to 65535, else array 32.
    return 1 if length < 16 else 3 if length < 1 << 16 else 5


def decode_rows(chunks: Iterable[bytes]) -> Iterator[tuple[Any, ...]]:
    unpacker = msgpack.Unpacker(raw=False, ext_hook=_ext_hook, use_list=False,
                                max_buffer_size=MAX_ROW_BYTES, strict_map_key=False)
    for chunk in chunks:
        unpacker.feed(chunk)
        yield from unpacker


def sqlite_value(value: Any) -> Any:
    """What to hand sqlite3 to store ``value`` with its original storage class."""
    if isinstance(value, InvalidText):
        # Bound bytes make a BLOB: the statement must wrap this placeholder in
        # CAST(? AS TEXT) (see placeholder()) to keep the TEXT class with the same bytes.
        return value.raw
    return value


def placeholder(value: Any) -> str:
    return "CAST(? AS TEXT)" if isinstance(value, InvalidText) else "?"


class IteratorReader(io.RawIOBase):
    """A read-only file over an iterator of byte strings, for the chunker."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = memoryview(b"")
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        view = memoryview(target)
        while not self._buffer:
            try:
                self._buffer = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        # A view of what is left, not a copy: a large chunk read in small pieces must not
        # be copied again on every read.
        n = min(len(view), len(self._buffer))
        view[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        self.total += n
        return n
