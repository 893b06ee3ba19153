"""The /metrics body: the catalogs' compressed state families joined, the per-scrape tail added."""

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

from prometheus_client import REGISTRY, generate_latest

from exporter.exposition.metrics import (
    HEALTH_FAMILIES,
    STATE_FAMILIES,
    Family,
    Health,
    assemble,
    render_health,
    render_quiet,
)
from exporter.exposition.pieces import GZIP_HEADER, Piece, gzip_end, inflate
from exporter.exposition.sla import QuietHours

# A catalog's state families, each compressed on its own (see pieces.py): replaced on a change.
Compressed = Mapping[str, Piece]
# The plain text is kept for scrapers without gzip up to this size (281k series: 33 MB); a
# larger one is inflated again per such scrape rather than held.
PLAIN_KEEP = 64 << 20


@cache
def header(family: Family) -> Piece:
    """Return a family's # HELP and # TYPE lines, compressed (once)."""
    return Piece.of(family.header().encode())


@dataclass
class Block:
    """The state families of every catalog: a gzip stream without its end (14:1 smaller)."""

    states: tuple[Compressed, ...]
    gzip_head: bytes  # gzip header and the compressed text; a scrape adds the tail and trailer
    crc: int  # CRC-32 of the text
    size: int  # length of the text
    _plain: bytes | None = None  # the text, kept from the first scrape that wanted no gzip
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def plain(self) -> Iterator[bytes]:
        """Yield the uncompressed text in pieces: inflated once per change, unless it is huge."""
        compressed = memoryview(self.gzip_head)[len(GZIP_HEADER) :]
        if self.size > PLAIN_KEEP:
            yield from inflate(compressed)  # memory stays flat, each such scrape inflates
            return
        with self._lock:
            if self._plain is None:
                self._plain = b"".join(inflate(compressed))
        yield self._plain  # whole: the server sends it without copying


def build_block(states: Sequence[Compressed]) -> Block:
    """Join the catalogs' compressed families in family order: no text is compressed again."""
    pieces = []
    for name, family in STATE_FAMILIES.items():
        found = [state[name] for state in states if name in state]
        if found:
            pieces += [header(family), *found]
    head = Piece.join(pieces)
    return Block(tuple(states), b"".join([GZIP_HEADER, *head.parts]), head.crc, head.size)


class Exposition:
    """Builds /metrics: the state block is rebuilt only when a catalog's rendering changes."""

    def __init__(self) -> None:
        self._block = build_block(())
        self._lock = threading.Lock()

    def plain_kept(self) -> bool:
        """Tell whether the current block keeps its plain text (else it inflates per scrape)."""
        return self._block.size <= PLAIN_KEEP

    def rebuild(self, states: Sequence[Compressed]) -> Block:
        """Return the block for these renderings, building it only when one of them changed."""
        with self._lock:
            # Renderings are replaced, never mutated, so identity tells whether anything changed.
            old = self._block.states
            same = len(states) == len(old) and all(
                a is b for a, b in zip(states, old, strict=True)
            )
            if not same:
                self._block = build_block(states)
            return self._block

    def render(
        self, states: Sequence[Compressed], health: Iterable[Health],
        quiet: Sequence[tuple[str, Sequence[QuietHours]]] = (), gzip: bool = False,
        extra: bytes = b"",
    ) -> Iterator[bytes]:
        """Yield the whole exposition in pieces (gzip-compressed; `extra`: more families)."""
        block = self.rebuild(states)
        now = datetime.now(UTC)
        tail = assemble(HEALTH_FAMILIES, [render_health(health), render_quiet(quiet, now)])
        tail_bytes = tail.encode() + extra + generate_latest(REGISTRY)
        if gzip:
            yield block.gzip_head
            yield gzip_end(block.crc, block.size, tail_bytes)
            return
        yield from block.plain()
        yield tail_bytes
