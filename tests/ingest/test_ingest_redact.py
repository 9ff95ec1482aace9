"""gateway.ingest.redact and codec header scans."""

from __future__ import annotations

import pytest

from gateway.demux.codec import codec_name, jpeg_size, mpeg_video_info
from gateway.ingest.redact import Redactor, redact, register_secrets


def test_userinfo_is_removed_from_urls() -> None:
    r = Redactor()
    assert r("GET http://root:s3cret@cam.local:8080/axis-cgi/x") == (
        "GET http://cam.local:8080/axis-cgi/x"
    )
    assert r("see https://user@host/") == "see https://host/"
    assert r("http://a:b%40c@h/p?q=1@2") == "http://h/p?q=1@2"


def test_registered_secrets_and_encoded_forms_are_masked() -> None:
    r = Redactor()
    r.register(["p@ss word", ""])
    assert r("password p@ss word, encoded p%40ss%20word") == "password ***, encoded ***"
    r.register(["ss"])
    assert r("p@ss word") == "***"  # the longer secret wins


def test_authorization_values_are_masked() -> None:
    assert Redactor()("Authorization: Digest username=x, response=y\r\nHost: h") == (
        "Authorization: ***\r\nHost: h"
    )


def test_module_level_redact_uses_registered_secrets() -> None:
    register_secrets(["module-level-secret-1"])
    assert redact("x module-level-secret-1 y") == "x *** y"


def jpeg(width: int, height: int, marker: int = 0xC0) -> bytes:
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    com = b"\xff\xfe\x00\x05abc"
    sof = bytes([0xFF, marker, 0, 17, 8]) + height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return b"\xff\xd8" + app0 + b"\xff" + com + sof + b"\x03" + b"\x00" * 9 + b"\xff\xd9"


@pytest.mark.parametrize("marker", [0xC0, 0xC1, 0xC2])
def test_jpeg_size_from_sof(marker: int) -> None:
    assert jpeg_size(jpeg(640, 480, marker)) == (640, 480)
    assert jpeg_size(memoryview(jpeg(1920, 1080, marker))) == (1920, 1080)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xd8", b"\x00\x00\x00\x00", b"\xff\xd8\xff\xda\x00\x02", jpeg(640, 480)[:25]],
)
def test_jpeg_size_gives_up_cleanly(data: bytes) -> None:
    assert jpeg_size(data) is None


def test_mpeg_sequence_header() -> None:
    seq = b"\x00\x00\x01\xb3" + bytes([0x28, 0x01, 0xE0, 0x33, 0xFF, 0xFF, 0xE0, 0x18])
    ext = b"\x00\x00\x01\xb5\x14\x8a\x00\x01\x00\x00"
    assert mpeg_video_info(seq + ext) == ("MPEG-2 video (elementary stream)", (640, 480))
    assert mpeg_video_info(b"\x00\x00\x01\xba" + b"\x44" * 10 + seq + ext) == (
        "MPEG-2 video (program stream)",
        (640, 480),
    )
    assert mpeg_video_info(seq + b"\x00" * 8) == ("MPEG-1 video (elementary stream)", (640, 480))
    assert mpeg_video_info(b"\x00\x00\x01\x00") is None


def test_codec_names() -> None:
    assert codec_name("image/jpeg") == "JPEG"
    assert codec_name("audio/32KADPCM").startswith("G.726")
    assert codec_name("video/x-thing; a=b") == "video/x-thing"
