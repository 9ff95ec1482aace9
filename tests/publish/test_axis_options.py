"""MJPEG request parameters, part headers and the upstream rate policy (no I/O)."""

from __future__ import annotations

import pytest

from gateway.hub import Priority, UpstreamRate
from gateway.publish.axis import MjpegOptions, parse_mjpeg_options, part_header
from gateway.publish.axis.options import PARSERS, RATE_KEYS
from gateway.transcode import ParamError

VALID = [
    ({}, MjpegOptions()),
    ({"showlength": "0"}, MjpegOptions(showlength=False)),
    ({"showlength": "1"}, MjpegOptions(showlength=True)),
    ({"deltatime": "1"}, MjpegOptions(deltatime=True)),
    ({"deltatime": "0"}, MjpegOptions(deltatime=False)),
    ({"duration": "3"}, MjpegOptions(duration=3)),
    ({"duration": "0"}, MjpegOptions(duration=None)),
    ({"nbrofframes": "7"}, MjpegOptions(nbrofframes=7)),
    ({"nbrofframes": "0"}, MjpegOptions(nbrofframes=None)),
    ({"req_fps": "5"}, MjpegOptions(target_fps=5, priority=Priority.REQUIRED)),
    ({"des_fps": "5"}, MjpegOptions(target_fps=5, priority=Priority.DESIRED)),
    ({"fps": "12"}, MjpegOptions(target_fps=12, priority=Priority.DESIRED)),
    ({"maxlag": "100"}, MjpegOptions(maxlag_ns=500_000_000)),
    ({"maxlag": "2000"}, MjpegOptions(maxlag_ns=2_000_000_000)),
    ({"quad": "0"}, MjpegOptions()),
    ({"resolution": "320x240", "camera": "2"}, MjpegOptions()),  # not this parser's keys
]

INVALID = [
    ({"showlength": "2"}, "showlength must be an integer from 0 to 1, got '2'"),
    ({"showlength": "yes"}, "showlength must be an integer from 0 to 1, got 'yes'"),
    ({"deltatime": "-1"}, "deltatime must be an integer from 0 to 1, got '-1'"),
    ({"duration": "1.5"}, "duration must be an integer from 0 to 10000000, got '1.5'"),
    ({"duration": ""}, "duration must be an integer from 0 to 10000000, got ''"),
    ({"nbrofframes": "x"}, "nbrofframes must be an integer from 0 to 1000000000, got 'x'"),
    ({"req_fps": "0"}, "req_fps must be an integer from 1 to 1000, got '0'"),
    ({"req_fps": "2.5"}, "req_fps must be an integer from 1 to 1000, got '2.5'"),
    ({"des_fps": "-3"}, "des_fps must be an integer from 1 to 1000, got '-3'"),
    ({"des_fps": "+3"}, "des_fps must be an integer from 1 to 1000, got '+3'"),
    ({"fps": "1001"}, "fps must be an integer from 1 to 1000, got '1001'"),
    ({"fps": "٣"}, "fps must be an integer from 1 to 1000, got '٣'"),
    ({"maxlag": "soon"}, "maxlag must be an integer from 0 to 10000000000, got 'soon'"),
    ({"req_fps": "5", "des_fps": "5"}, "req_fps and des_fps cannot be used at the same time"),
    ({"req_fps": "5", "fps": "5"}, "req_fps and fps cannot be used at the same time"),
    ({"des_fps": "5", "fps": "5"}, "des_fps and fps cannot be used at the same time"),
    ({"quad": "1"}, "quad is not supported (only quad=0)"),
    (
        {"duration": "9" * 40},
        "duration must be an integer from 0 to 10000000, got '99999999999999999999...'",
    ),
]


@pytest.mark.parametrize(("query", "expected"), VALID)
def test_valid_parameters(query: dict[str, str], expected: MjpegOptions) -> None:
    assert parse_mjpeg_options(query) == expected


@pytest.mark.parametrize(("query", "message"), INVALID)
def test_invalid_parameters(query: dict[str, str], message: str) -> None:
    with pytest.raises(ParamError) as info:
        parse_mjpeg_options(query)
    assert str(info.value) == message


def test_every_table_entry_is_exercised() -> None:
    keys = {key for query, _ in VALID + INVALID for key in query}
    assert set(PARSERS) <= keys
    assert set(RATE_KEYS) <= set(PARSERS)


@pytest.mark.parametrize(
    ("length", "delta", "expected"),
    [
        (10, None, b"--myboundary\r\nContent-Type: image/jpeg\r\nContent-Length: 10\r\n\r\n"),
        (None, None, b"--myboundary\r\nContent-Type: image/jpeg\r\n\r\n"),
        (
            5,
            40000,
            b"--myboundary\r\nContent-Type: image/jpeg\r\nContent-Length: 5\r\n"
            b"X-Delta-Time: 40000\r\n\r\n",
        ),
    ],
)
def test_part_header(length: int | None, delta: int | None, expected: bytes) -> None:
    assert part_header(length, delta) == expected


def test_upstream_rate_raises_at_once_and_lowers_after_a_delay() -> None:
    rate = UpstreamRate(25, lower_after=5.0)
    assert rate.current == 25
    assert rate.get_timer() is None
    assert not rate.update(None, False, now=0.0)  # nobody: configured
    assert not rate.update(5.0, True, now=1.0)  # lower: later
    assert rate.get_timer() == 6.0
    assert rate.current == 25
    assert not rate.handle_timer(5.9)
    assert rate.handle_timer(6.0)
    assert rate.current == 5
    assert rate.update(10.0, True, now=7.0)
    assert rate.current == 10
    assert rate.update(None, True, now=8.0)
    assert rate.current == 25
    assert not rate.update(40.0, True, now=9.0)  # capped at the configured rate
    assert rate.current == 25
    assert rate.get_timer() is None


def test_upstream_rate_ignores_churn_inside_the_delay() -> None:
    rate = UpstreamRate(25, lower_after=5.0)
    changes = 0
    for i in range(20):  # a 5 fps client comes and goes every 0.2 s
        changes += rate.update(5.0 if i % 2 else None, i % 2 == 1, now=i * 0.2)
        changes += rate.handle_timer(i * 0.2)
    assert changes == 0
    assert rate.current == 25


def test_upstream_rate_deadline_counts_from_when_higher_clients_left() -> None:
    rate = UpstreamRate(None, lower_after=2.0)
    assert rate.wanted(None, False) is None  # camera default: nothing configured
    assert not rate.update(10.5, True, now=0.0)
    assert not rate.update(3.0, True, now=1.0)  # still lower: the deadline stays at 2.0
    assert rate.get_timer() == 2.0
    assert rate.handle_timer(2.0)
    assert rate.current == 3
    assert rate.update(10.5, True, now=3.0)
    assert rate.current == 11
    assert rate.update(None, False, now=4.0)
    assert rate.current is None
