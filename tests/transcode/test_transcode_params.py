"""Axis image parameters: every valid and invalid value, with the one-line reasons."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import GatewayError, RemoteProtocolError
from gateway.transcode import ImageParams, ParamError, parse_image_params

SOURCE = (640, 480)

VALID: list[tuple[dict[str, str], tuple[int, int] | None, ImageParams]] = [
    ({}, SOURCE, ImageParams()),
    ({"fps": "5", "camera": "2"}, SOURCE, ImageParams()),
    ({"resolution": "320x240"}, SOURCE, ImageParams(resolution=(320, 240))),
    ({"resolution": "320X240"}, SOURCE, ImageParams(resolution=(320, 240))),
    ({"resolution": "1x1"}, SOURCE, ImageParams(resolution=(1, 1))),
    ({"resolution": "640x480"}, SOURCE, ImageParams()),
    ({"resolution": "8192x8192"}, None, ImageParams(resolution=(8192, 8192))),
    ({"resolution": "640x480"}, None, ImageParams(resolution=(640, 480))),
    ({"resolution": "240x320", "rotation": "90"}, SOURCE, ImageParams((240, 320), rotation=90)),
    ({"resolution": "480x640", "rotation": "270"}, SOURCE, ImageParams(rotation=270)),
    ({"resolution": "640x480", "rotation": "180"}, SOURCE, ImageParams(rotation=180)),
    ({"compression": "0"}, SOURCE, ImageParams(compression=0)),
    ({"compression": "30"}, SOURCE, ImageParams(compression=30)),
    ({"compression": "100"}, SOURCE, ImageParams(compression=100)),
    ({"compression": "007"}, SOURCE, ImageParams(compression=7)),
    ({"colorlevel": "0"}, SOURCE, ImageParams(colorlevel=0)),
    ({"colorlevel": "50"}, SOURCE, ImageParams(colorlevel=50)),
    ({"colorlevel": "100"}, SOURCE, ImageParams()),
    ({"rotation": "0"}, SOURCE, ImageParams()),
    ({"rotation": "90"}, SOURCE, ImageParams(rotation=90)),
    ({"rotation": "180"}, SOURCE, ImageParams(rotation=180)),
    ({"rotation": "270"}, SOURCE, ImageParams(rotation=270)),
    ({"clock": "1", "date": "1", "text": "1"}, SOURCE, ImageParams()),
    ({"clock": "0", "date": "0", "text": "0"}, SOURCE, ImageParams()),
    (
        {"resolution": "160x120", "compression": "50", "colorlevel": "0", "rotation": "180"},
        SOURCE,
        ImageParams((160, 120), 50, 0, 180),
    ),
]

INVALID: list[tuple[dict[str, str], tuple[int, int] | None, str]] = [
    ({"rotation": "45"}, SOURCE, "rotation must be 0, 90, 180 or 270, got 45"),
    ({"rotation": "-90"}, SOURCE, "rotation must be 0, 90, 180 or 270, got -90"),
    ({"rotation": "360"}, SOURCE, "rotation must be 0, 90, 180 or 270, got 360"),
    ({"rotation": "abc"}, SOURCE, "rotation must be 0, 90, 180 or 270, got abc"),
    ({"rotation": ""}, SOURCE, "rotation must be 0, 90, 180 or 270, got ''"),
    ({"resolution": "0x0"}, SOURCE, "resolution must be at least 1x1, got 0x0"),
    ({"resolution": "320x0"}, SOURCE, "resolution must be at least 1x1, got 320x0"),
    ({"resolution": "640"}, SOURCE, "resolution must be <width>x<height>, got 640"),
    ({"resolution": "x480"}, SOURCE, "resolution must be <width>x<height>, got x480"),
    ({"resolution": "320x240x2"}, SOURCE, "resolution must be <width>x<height>, got 320x240x2"),
    ({"resolution": "-320x240"}, SOURCE, "resolution must be <width>x<height>, got -320x240"),
    ({"resolution": "320 x 240"}, SOURCE, "resolution must be <width>x<height>, got '320 x 240'"),
    ({"resolution": ""}, SOURCE, "resolution must be <width>x<height>, got ''"),
    ({"resolution": "9000x10"}, None, "resolution sides must be at most 8192, got 9000x10"),
    (
        {"resolution": "1280x960"},
        SOURCE,
        "resolution 1280x960 is larger than the source 640x480",
    ),
    (
        {"resolution": "641x480"},
        SOURCE,
        "resolution 641x480 is larger than the source 640x480",
    ),
    (
        {"resolution": "640x480", "rotation": "90"},
        SOURCE,
        "resolution 640x480 is larger than the source (rotated) 480x640",
    ),
    ({"compression": "101"}, SOURCE, "compression must be an integer from 0 to 100, got 101"),
    ({"compression": "-1"}, SOURCE, "compression must be an integer from 0 to 100, got -1"),
    ({"compression": "abc"}, SOURCE, "compression must be an integer from 0 to 100, got abc"),
    ({"compression": "1.5"}, SOURCE, "compression must be an integer from 0 to 100, got 1.5"),
    ({"compression": "+5"}, SOURCE, "compression must be an integer from 0 to 100, got +5"),
    (
        {"compression": "\u0665"},
        SOURCE,
        "compression must be an integer from 0 to 100, got '\u0665'",
    ),
    ({"colorlevel": "101"}, SOURCE, "colorlevel must be an integer from 0 to 100, got 101"),
    ({"colorlevel": "-5"}, SOURCE, "colorlevel must be an integer from 0 to 100, got -5"),
    ({"colorlevel": "full"}, SOURCE, "colorlevel must be an integer from 0 to 100, got full"),
    ({"clock": "2"}, SOURCE, "clock must be 0 or 1, got 2"),
    ({"date": "yes"}, SOURCE, "date must be 0 or 1, got yes"),
    ({"text": ""}, SOURCE, "text must be 0 or 1, got ''"),
    (
        {"compression": "9" * 100},
        SOURCE,
        "compression must be an integer from 0 to 100, got '" + "9" * 32 + "...'",
    ),
]


@pytest.mark.parametrize(("query", "source", "expected"), VALID)
def test_valid_values(
    query: dict[str, str], source: tuple[int, int] | None, expected: ImageParams
) -> None:
    assert parse_image_params(query, source) == expected


@pytest.mark.parametrize(("query", "source", "message"), INVALID)
def test_invalid_values(
    query: dict[str, str], source: tuple[int, int] | None, message: str
) -> None:
    with pytest.raises(ParamError) as info:
        parse_image_params(query, source)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_param_error_is_the_clients_fault() -> None:
    assert issubclass(ParamError, RemoteProtocolError)
    assert issubclass(ParamError, GatewayError)
    assert issubclass(ParamError, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rotation": 45}, "rotation must be 0, 90, 180 or 270, got 45"),
        ({"resolution": (0, 10)}, "resolution must be at least 1x1, got (0, 10)"),
        ({"compression": 101}, "compression must be an integer from 0 to 100, got 101"),
        ({"colorlevel": -1}, "colorlevel must be an integer from 0 to 100, got -1"),
    ],
)
def test_direct_construction_is_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ParamError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ImageParams(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("params", "passthrough"),
    [
        (ImageParams(), True),
        (ImageParams(colorlevel=100), True),
        (ImageParams(colorlevel=99), False),
        (ImageParams(compression=0), False),
        (ImageParams(rotation=180), False),
        (ImageParams(resolution=(320, 240)), False),
    ],
)
def test_is_passthrough(params: ImageParams, passthrough: bool) -> None:
    assert params.is_passthrough is passthrough


def test_params_are_a_hashable_variant_key() -> None:
    a = parse_image_params({"resolution": "320x240", "clock": "1"}, SOURCE)
    b = parse_image_params({"resolution": "320x240", "text": "0", "fps": "10"}, SOURCE)
    assert a == b
    assert len({a, b, ImageParams(rotation=90)}) == 2
    with pytest.raises(AttributeError):
        a.rotation = 90  # type: ignore[misc]


@pytest.mark.parametrize(
    ("params", "label"),
    [
        (ImageParams(), "passthrough"),
        (ImageParams((320, 240), 30, 0, 90), "320x240,c30,cl0,r90"),
        (ImageParams(compression=5), "c5"),
    ],
)
def test_describe(params: ImageParams, label: str) -> None:
    assert params.describe() == label


@pytest.mark.parametrize(
    ("params", "size"),
    [
        (ImageParams(), (640, 480)),
        (ImageParams(rotation=180), (640, 480)),
        (ImageParams(rotation=90), (480, 640)),
        (ImageParams(rotation=270), (480, 640)),
        (ImageParams((100, 200), rotation=90), (100, 200)),
    ],
)
def test_output_size(params: ImageParams, size: tuple[int, int]) -> None:
    assert params.output_size(SOURCE) == size


KEYS = st.sampled_from(["resolution", "compression", "colorlevel", "rotation", "clock", "x"])


@given(st.dictionaries(KEYS, st.text(max_size=40), max_size=6))
def test_any_query_parses_or_raises_param_error(query: dict[str, str]) -> None:
    try:
        params = parse_image_params(query, SOURCE)
    except ParamError as exc:
        message = str(exc)
    else:
        assert hash(params) == hash(params)
        return
    assert "\n" not in message
    assert len(message) < 200
