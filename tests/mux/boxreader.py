"""A tiny strict ISO BMFF reader for the tests: the box tree and every written box's fields.

Independent of gateway.mux on purpose (it reads what the writer wrote). Each field
parser must consume its box's payload exactly, so a wrong length or layout fails.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.mux.boxfields import CHILDREN_AT, FIELD_PARSERS, BoxError, Cursor, Fields


@dataclass
class Box:
    """One parsed box."""

    type: bytes
    #: Offset of the box's first byte in the parsed buffer.
    start: int
    size: int
    header_size: int
    payload: bytes
    fields: Fields = field(default_factory=dict)
    children: list[Box] = field(default_factory=list)

    def find(self, path: str) -> list[Box]:
        """Return the descendants at ``path`` ("trak/mdia/mdhd")."""
        return find(self.children, path)

    def one(self, path: str) -> Box:
        """Return the single descendant at ``path``."""
        found = self.find(path)
        if len(found) != 1:
            raise BoxError(f"{len(found)} boxes at {path} in {self.type!r}")
        return found[0]


def parse(data: bytes, start: int = 0, end: int | None = None) -> list[Box]:
    """Return the boxes in ``data[start:end]``, recursing into containers."""
    end = len(data) if end is None else end
    boxes = []
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise BoxError(f"box header truncated at {pos}")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        if size < header or pos + size > end:
            raise BoxError(f"box {kind!r} at {pos}: bad size {size}")
        payload = data[pos + header : pos + size]
        item = Box(kind, pos, size, header, payload)
        if kind in CHILDREN_AT:
            skip = CHILDREN_AT[kind]
            item.children = parse(data, pos + header + skip, pos + size)
            payload = payload[:skip]
        parser = FIELD_PARSERS.get(kind)
        if parser is not None:
            cursor = Cursor(payload)
            item.fields = parser(cursor)
            if cursor.pos != len(payload):
                raise BoxError(f"{kind!r}: {len(payload) - cursor.pos} bytes left unparsed")
        boxes.append(item)
        pos += size
    return boxes


def find(boxes: list[Box], path: str) -> list[Box]:
    """Return the boxes at ``path`` below ``boxes`` ("moov/trak/tkhd")."""
    head, _, tail = path.partition("/")
    matched = [b for b in boxes if b.type == head.encode()]
    if not tail:
        return matched
    return [d for b in matched for d in find(b.children, tail)]


def walk(boxes: list[Box]) -> Iterator[Box]:
    """Yield every box, depth first."""
    for item in boxes:
        yield item
        yield from walk(item.children)
