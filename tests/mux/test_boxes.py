"""Generic box building: headers, full boxes, large sizes, fixed-point and language fields."""

from __future__ import annotations

import pytest

from gateway.errors import LocalProtocolError
from gateway.mux import boxes
from tests.mux.boxreader import parse


def test_box_and_full_box() -> None:
    assert boxes.box(b"free") == b"\x00\x00\x00\x08free"
    assert boxes.box(b"free", b"ab", b"c") == b"\x00\x00\x00\x0bfreeabc"
    assert boxes.full_box(b"mfhd", 1, 0x020001, b"\x00\x00\x00\x07") == (
        b"\x00\x00\x00\x10mfhd\x01\x02\x00\x01\x00\x00\x00\x07"
    )
    nested = boxes.container(b"moov", [boxes.box(b"free", b"x"), boxes.box(b"skip")])
    (moov,) = parse(nested)
    assert [child.type for child in moov.children] == [b"free", b"skip"]
    assert [child.start for child in moov.children] == [8, 17]


def test_large_boxes_use_largesize() -> None:
    assert boxes.box_header(b"mdat", boxes.MAX_COMPACT_SIZE - 8) == b"\xff\xff\xff\xffmdat"
    header = boxes.box_header(b"mdat", boxes.MAX_COMPACT_SIZE - 7)
    # size == 1, then the 64-bit size counting the 16-byte header.
    assert header == b"\x00\x00\x00\x01mdat" + (boxes.MAX_COMPACT_SIZE - 7 + 16).to_bytes(8, "big")


@pytest.mark.parametrize(
    "call",
    [
        lambda: boxes.box(b"abc"),
        lambda: boxes.box_header(b"mdat", -1),
        lambda: boxes.full_box(b"tfhd", 256, 0),
        lambda: boxes.full_box(b"tfhd", 0, 1 << 24),
        lambda: boxes.u8(256),
        lambda: boxes.u16(-1),
        lambda: boxes.i16(1 << 15),
        lambda: boxes.u32(1 << 32),
        lambda: boxes.u64(-1),
        lambda: boxes.language("UND"),
        lambda: boxes.language("en"),
        lambda: boxes.language("e1g"),
    ],
)
def test_misuse_raises_local_protocol_error(call: object) -> None:
    assert callable(call)
    with pytest.raises(LocalProtocolError):
        call()


def test_fields() -> None:
    assert boxes.fixed16_16(320) == b"\x01\x40\x00\x00"
    assert boxes.i16(-256) == b"\xff\x00"
    # ISO 639-2/T "und": (21, 14, 4) packed in 5 bits each.
    assert boxes.language() == b"\x55\xc4"
    assert boxes.language("eng") == (5 << 10 | 14 << 5 | 7).to_bytes(2, "big")
    assert len(boxes.UNITY_MATRIX) == 36
