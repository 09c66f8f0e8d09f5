"""Per-blob zstd compression that skips data which does not compress.

Each blob's plaintext starts with one flag byte saying how the rest is encoded, so the
choice is made blob by blob: random or already-compressed data is stored raw instead of
paying zstd's cost twice (on write and on every read).
"""

from __future__ import annotations

import threading

import zstandard

RAW = b"\x00"
ZSTD = b"\x01"

# Keep the compressed form only if it saves at least this fraction; below that the read
# cost outweighs the bytes saved.
MIN_SAVING = 0.03

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    # ZstdCompressor objects are not thread-safe; one per thread and level.
    cache: dict[int, zstandard.ZstdCompressor] = _local.__dict__.setdefault("c", {})
    comp = cache.get(level)
    if comp is None:
        comp = cache[level] = zstandard.ZstdCompressor(level=level)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec = getattr(_local, "d", None)
    if dec is None:
        dec = _local.d = zstandard.ZstdDecompressor()
    return dec


# Large blobs are probed before being compressed whole: zstd on random or already
# compressed data costs as much CPU as on text and saves nothing. Three samples spread
# over the blob catch mixed content (an image with a text header) as compressible.
PROBE_MIN_SIZE = 256 * 1024
PROBE_SAMPLE = 16 * 1024


def _worth_compressing(data: bytes | memoryview, level: int) -> bool:
    if len(data) < PROBE_MIN_SIZE:
        return True
    view = memoryview(data)
    step = (len(view) - PROBE_SAMPLE) // 2
    comp = _compressor(min(level, 3))
    for start in (0, step, len(view) - PROBE_SAMPLE):
        sample = view[start:start + PROBE_SAMPLE]
        if len(comp.compress(sample)) < PROBE_SAMPLE * (1 - MIN_SAVING):
            return True
    return False


def encode(data: bytes | memoryview, level: int) -> bytes:
    """Flag byte + payload. ``level`` 0 disables compression."""
    if level <= 0 or len(data) < 64 or not _worth_compressing(data, level):
        return RAW + bytes(data)
    packed = _compressor(level).compress(data)
    if len(packed) > len(data) * (1 - MIN_SAVING):
        return RAW + bytes(data)
    return ZSTD + packed


def decode(payload: bytes, raw_length: int) -> bytes:
    flag, body = payload[:1], payload[1:]
    if flag == RAW:
        return body
    if flag == ZSTD:
        return _decompressor().decompress(body, max_output_size=raw_length)
    raise ValueError(f"unknown compression flag {flag!r}")
