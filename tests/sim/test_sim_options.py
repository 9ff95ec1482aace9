"""SimOptions validation, quirk parsing and multipart framing, in memory."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from gateway.sim import QUIRK_HELP, Quirk, SimOptions
from gateway.sim.framing import make_framing
from gateway.sim.options import COUNTED, QuirkError, parse_quirks


def test_every_quirk_has_help_and_kebab_name() -> None:
    assert set(QUIRK_HELP) == set(Quirk)
    for quirk in Quirk:
        assert quirk.value == quirk.name.lower().replace("_", "-")
        assert QUIRK_HELP[quirk]


def test_parse_quirks() -> None:
    assert parse_quirks(["lf-only", "stall-after=3", " chunked "]) == {
        Quirk.LF_ONLY: 0,
        Quirk.STALL_AFTER: 3,
        Quirk.CHUNKED: 0,
    }
    assert parse_quirks([q.value + ("=1" if q in COUNTED else "") for q in Quirk]).keys() == set(
        Quirk
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "unknown quirk 'nope' (known: no-content-length, lf-only"),
        ("stall-after", "quirk 'stall-after' needs a frame count: stall-after=N"),
        ("close-mid-frame=x", "needs a frame count"),
        ("lf-only=2", "quirk 'lf-only' takes no value"),
    ],
)
def test_parse_quirks_errors(spec: str, message: str) -> None:
    with pytest.raises(QuirkError) as info:
        parse_quirks([spec])
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fps": 0}, "sim.fps: must be in (0, 120]"),
        ({"size": (641, 480)}, "sim.size: must be even"),
        ({"channels": 0}, "sim.channels: must be 1..16"),
        ({"mpeg2_format": "mp4"}, "sim.mpeg2_format: must be one of es, ps, ts"),
        ({"audio_codec": "aac"}, "sim.audio_codec"),
        ({"auth": "ntlm", "user": ("a", "b")}, "sim.auth: must be one of basic, digest"),
        ({"auth": "basic"}, "sim.auth: auth and user go together"),
        ({"nonce_ttl": 0}, "sim.nonce_ttl"),
        ({"quirks": frozenset({"bogus"})}, "sim.quirks: unknown quirk 'bogus'"),
    ],
)
def test_options_errors_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        SimOptions(**kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_default_framing_is_axis_5_2_7() -> None:
    framing = make_framing({}, content_length=True)
    assert framing.content_type == "multipart/x-mixed-replace;boundary=myboundary"
    assert framing.opening() == b"--myboundary\r\n"
    assert framing.part(b"JPEG", "image/jpeg", 0) == (
        b"Content-Type: image/jpeg\r\nContent-Length: 4\r\n\r\nJPEG\r\n--myboundary\r\n"
    )


def test_wrong_content_length_every_fifth_short_then_long() -> None:
    framing = make_framing({Quirk.WRONG_CONTENT_LENGTH: 0}, content_length=True)
    declared = [
        int(framing.head("image/jpeg", 100, n).split(b": ")[2].split(b"\r")[0]) for n in range(10)
    ]
    assert declared == [100, 100, 100, 100, 93, 100, 100, 100, 100, 109]


def test_boundary_combinations() -> None:
    dashes = make_framing({Quirk.BOUNDARY_DASHES: 0, Quirk.BOUNDARY_QUOTED: 0}, content_length=True)
    assert dashes.content_type.endswith('boundary="--myboundary"')
    assert dashes.opening() == b"--myboundary\r\n"
    first = make_framing({Quirk.NEW_BOUNDARY: 0}, content_length=True)
    second = make_framing({Quirk.NEW_BOUNDARY: 0}, content_length=True)
    assert first.boundary != second.boundary
    assert first.content_type.endswith("boundary=" + first.boundary.decode())
