"""Compressed pieces of text that join into one gzip stream without compressing anything again."""

import ctypes
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# A gzip member header: deflate, no name, no time, no flags, OS unknown (RFC 1952).
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
LEVEL = 1  # fastest: the text is repetitive enough to shrink 14:1 even so
# A piece is a few KB: a 4 KB window finds the same matches as zlib's default 32 KB, and such a
# compressor costs a quarter as much to set up (10 us, not 38: its tables are allocated per piece).
WINDOW_BITS, MEMORY_LEVEL = 12, 5
CRC_POLY = 0xEDB88320  # CRC-32 of gzip, bit-reversed


def _zlib_combine() -> "ctypes._NamedFuncPointer | None":
    """Return zlib's own crc32_combine when the library loads (it nearly always does)."""
    try:
        combine = ctypes.CDLL("libz.so.1").crc32_combine
    except (OSError, AttributeError):
        return None
    combine.restype = ctypes.c_ulong
    combine.argtypes = [ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long]
    return combine


_COMBINE = _zlib_combine()


def _times(a: int, b: int) -> int:
    """Multiply two polynomials modulo the CRC polynomial (bit-reversed, as the CRC keeps them)."""
    product = 0
    for bit in range(31, -1, -1):  # the highest power sits in the lowest bit
        if a & (1 << bit):
            product ^= b
        b = (b >> 1) ^ CRC_POLY if b & 1 else b >> 1
    return product


def _shift(length: int) -> int:
    """Return x^(8 * length) modulo the CRC polynomial: appending `length` bytes to a CRC."""
    result, power = 1 << 31, 1 << 23  # 1 and x^8 (one byte), bit-reversed
    while length:
        if length & 1:
            result = _times(result, power)
        power = _times(power, power)
        length >>= 1
    return result


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """Return the CRC-32 of A + B from the CRC-32s of A and B and the length of B."""
    if _COMBINE is not None:
        return int(_COMBINE(crc1, crc2, length2))
    return _times(_shift(length2), crc1) ^ crc2 if length2 else crc1


@dataclass(frozen=True, slots=True, eq=False)  # compared and hashed by identity: fast, and enough
class Piece:
    """Raw deflate of some text, in parts ended by a sync flush: they concatenate into a stream."""

    parts: tuple[bytes, ...]  # copied together only once, into the whole body
    crc: int  # CRC-32 of the text
    size: int  # length of the text

    @classmethod
    def of(cls, text: bytes) -> "Piece":
        """Compress text on its own, so it never refers back to what precedes it."""
        deflate = zlib.compressobj(LEVEL, zlib.DEFLATED, -WINDOW_BITS, MEMORY_LEVEL)
        data = deflate.compress(text) + deflate.flush(zlib.Z_SYNC_FLUSH)
        return cls((data,), zlib.crc32(text), len(text))

    @classmethod
    def join(cls, pieces: Iterable["Piece"]) -> "Piece":
        """Put pieces in a row: their CRCs are combined, nothing is compressed or copied."""
        parts: list[bytes] = []
        crc, size = 0, 0
        for piece in pieces:
            parts += piece.parts
            crc = crc32_combine(crc, piece.crc, piece.size)
            size += piece.size
        return cls(tuple(parts), crc, size)


def gzip_end(crc: int, size: int, tail: bytes) -> bytes:
    """Return what ends a gzip stream of text with this CRC and size: the tail, and the trailer."""
    deflate = zlib.compressobj(LEVEL, zlib.DEFLATED, -WINDOW_BITS, MEMORY_LEVEL)
    data = deflate.compress(tail) + deflate.flush()
    crc = crc32_combine(crc, zlib.crc32(tail), len(tail))
    return data + struct.pack("<II", crc, (size + len(tail)) & 0xFFFFFFFF)


def inflate(data: bytes | memoryview, chunk: int = 1 << 16) -> Iterator[bytes]:
    """Yield the text of concatenated pieces, one compressed chunk at a time."""
    decompress = zlib.decompressobj(-15)
    for start in range(0, len(data), chunk):
        yield decompress.decompress(data[start : start + chunk])
