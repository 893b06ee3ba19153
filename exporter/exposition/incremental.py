"""Incremental rendering: items kept in groups of keys, each group's lines compressed per family.

A change re-renders and recompresses only the groups of the keys it touched, then joins each
touched family's pieces again (a copy of compressed bytes, no compression): the work follows what
changed, not the size of the catalog.
"""

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from exporter.catalog.model import CatalogModel
from exporter.exposition.pieces import Piece

Lines = dict[str, list[str]]
# Renders some items (key, value), in key order, into their lines by family.
RenderItems = Callable[[str, list[tuple[Any, Any]]], Lines]
GROUP = 32  # keys per group: fewer re-render less per change, more leave more pieces to join
PAGE = 16  # groups whose joined CRC is kept, so a change combines few CRCs
_MISSING = object()


def compress(lines: Mapping[str, Sequence[str]]) -> dict[str, Piece]:
    """Compress lines (labels and value) by family, each line behind its family's name."""
    return {name: Piece.of("".join(f"{name}{line}\n" for line in found).encode())
            for name, found in lines.items() if found}


@dataclass(frozen=True)
class Kind:
    """A kind of item (series, clients, pools...): where the model keeps them, how they render."""

    name: str  # for tracked kinds, the part the model notes changed keys under
    items: Callable[[CatalogModel], Mapping[Any, Any]]
    render: RenderItems
    tracked: bool = False  # updated in place: the model notes the changed keys
    # Untracked kinds are compared item by item, unless this object (which the model replaces
    # whole on a change) is the one seen last time.
    source: Callable[[CatalogModel], object] | None = None


@dataclass
class Group:
    """Consecutive keys of one kind and their compressed lines by family."""

    keys: list[Any]
    pieces: dict[str, Piece] = field(default_factory=dict)


class Section:
    """The items of one kind in one catalog, in groups of about GROUP keys in key order."""

    def __init__(self, render: RenderItems) -> None:
        self.render = render
        self.groups: list[Group] = []

    def build(self, catalog: str, items: Mapping[Any, Any]) -> set[str]:
        """Render every item afresh; return the families whose lines may have changed."""
        keys = sorted(items)
        old = self.groups
        self.groups = [Group(keys[i : i + GROUP]) for i in range(0, len(keys), GROUP)]
        touched = {name for group in old for name in group.pieces}
        for group in self.groups:
            touched |= self._render(catalog, items, group)
        return touched

    def update(self, catalog: str, items: Mapping[Any, Any], changed: Iterable[Any]) -> set[str]:
        """Re-render the groups of keys added, removed or changed; return the families touched."""
        if not self.groups:
            return self.build(catalog, items)
        firsts = [group.keys[0] for group in self.groups]
        dirty: dict[int, Group] = {}
        for key in changed:
            group = self.groups[max(0, bisect_right(firsts, key) - 1)]
            at = bisect_left(group.keys, key)
            there = at < len(group.keys) and group.keys[at] == key
            if key in items and not there:
                group.keys.insert(at, key)
            elif key not in items and there:
                del group.keys[at]
            elif key not in items:
                continue  # neither rendered nor there now
            dirty[id(group)] = group
        touched: set[str] = set()
        if not dirty:
            return touched
        groups: list[Group] = []
        for group in self.groups:
            if id(group) not in dirty:
                groups.append(group)
                continue
            touched.update(group.pieces)  # the group's old lines go, whatever replaces them
            keys = group.keys
            # A group that grew past twice the size is split, so groups stay small.
            size = GROUP if len(keys) > 2 * GROUP else max(len(keys), 1)
            for start in range(0, len(keys), size):
                part = Group(keys[start : start + size])
                touched |= self._render(catalog, items, part)
                groups.append(part)
        self.groups = groups
        return touched

    def _render(self, catalog: str, items: Mapping[Any, Any], group: Group) -> set[str]:
        """Render one group's lines and compress them; return its families."""
        group.pieces = compress(self.render(catalog, [(key, items[key]) for key in group.keys]))
        return set(group.pieces)

    def pieces(self, family: str) -> list[Piece]:
        """Return the compressed lines of one family, group by group in key order."""
        return [group.pieces[family] for group in self.groups if family in group.pieces]


class Rendering:
    """One catalog's state families, compressed, brought up to date from the model's changes."""

    def __init__(self, catalog: str, kinds: Sequence[Kind]) -> None:
        self.catalog = catalog
        self.kinds = kinds
        self.sections = {kind.name: Section(kind.render) for kind in kinds}
        self.seen: dict[str, tuple[object, Mapping[Any, Any]]] = {}  # untracked: last items
        self.model: CatalogModel | None = None
        self.pages: dict[str, dict[tuple[Piece, ...], Piece]] = {}  # family: pieces -> joined
        # Replaced, never changed in place, so that readers may hold it and compare identity.
        self.pieces: dict[str, Piece] = {}

    def update(self, model: CatalogModel) -> dict[str, Piece]:
        """Bring the pieces up to date with the model; return them (a new dict if they changed)."""
        changes = model.take_changes()
        fresh, self.model = model is not self.model, model
        touched: dict[str, set[str]] = {}
        for kind in self.kinds:
            section = self.sections[kind.name]
            source = kind.source(model) if kind.source else None
            last_source, last = self.seen.get(kind.name, (None, {}))
            if not fresh and source is not None and source is last_source:
                continue
            items = kind.items(model)
            if fresh:
                touched[kind.name] = section.build(self.catalog, items)
            elif kind.tracked:
                touched[kind.name] = section.update(
                    self.catalog, items, changes.get(kind.name, ()))
            else:
                differ = [key for key in last.keys() | items.keys()
                          if last.get(key, _MISSING) != items.get(key, _MISSING)]
                touched[kind.name] = section.update(self.catalog, items, differ)
            if not kind.tracked:
                self.seen[kind.name] = (source, items)
        if any(touched.values()):
            pieces = dict(self.pieces)
            for name, families in touched.items():
                for family in families:
                    found = self.sections[name].pieces(family)
                    if found:
                        pieces[family] = self._join(family, found)
                    else:
                        pieces.pop(family, None)
            self.pieces = pieces
        return self.pieces

    def _join(self, family: str, found: list[Piece]) -> Piece:
        """Join a family's pieces page by page, reusing the pages whose pieces are all unchanged."""
        known = self.pages.get(family, {})
        kept: dict[tuple[Piece, ...], Piece] = {}
        pages = []
        for start in range(0, len(found), PAGE):
            page = tuple(found[start : start + PAGE])
            pages.append(known.get(page) or Piece.join(page))
            kept[page] = pages[-1]
        self.pages[family] = kept
        return Piece.join(pages)
