"""H264Pipeline on MJPEG input: keyframes, timestamps, stream structure, failures."""

from __future__ import annotations

import functools
import logging

import pytest

from gateway.errors import LocalProtocolError
from gateway.media import StreamKind
from gateway.mux.h264 import NalType, codec_string_from_sps, to_annexb
from gateway.transcode.h264 import H264Pipeline
from gateway.transcode.h264_params import H264Settings

from .h264_helpers import HZ, decode_h264, feed, jittered, moving_jpegs, nal_types, stamps, wobbly
from .images import colourful, encode_jpeg


@functools.cache
def jpegs(count: int = 40) -> tuple[bytes, ...]:
    """Return ``count`` moving 160x120 JPEGs (made once per test run)."""
    return tuple(moving_jpegs(count))


def pipeline(**settings: object) -> H264Pipeline:
    """Return a pipeline with ``settings`` over the defaults."""
    return H264Pipeline(H264Settings(**settings))  # type: ignore[arg-type]


def test_forced_keyframe_lands_on_that_very_frame() -> None:
    pts = stamps(25, 40)
    out = feed(pipeline(keyframe_seconds=10.0), jpegs(), pts, force=[7, 23])
    assert [unit.pts for unit in out if unit.keyframe] == [pts[0], pts[7], pts[23]]
    for unit in out:
        types = nal_types(unit.annexb)
        assert (NalType.IDR in types) == unit.keyframe
    decode_h264(out)


def test_forced_keyframe_counted_unless_due_anyway() -> None:
    pts = stamps(25, 40)
    encode = pipeline(keyframe_seconds=1.0)
    out = feed(encode, jpegs(), pts, force=[10, 35])
    # The request at 10 re-anchors the schedule: the next IDR is due a second later, at
    # 35, where the second request costs nothing.
    assert [unit.pts for unit in out if unit.keyframe] == [pts[0], pts[10], pts[35]]
    counters = encode.counters
    assert (counters.keyframes_forced, counters.keyframes_periodic) == (1, 2)
    assert counters.keyframes_missed == 0


def test_keyframe_due_reports_the_schedule() -> None:
    encode = pipeline(keyframe_seconds=0.5)
    assert encode.keyframe_due(0)  # nothing encoded yet
    pts = stamps(25, 5, start=0)
    feed(encode, jpegs()[:5], pts)
    assert not encode.keyframe_due(pts[-1] + 3600)
    assert encode.keyframe_due(HZ // 2)


@pytest.mark.parametrize("fps", [12.5, 25, 30])
def test_periodic_keyframes_follow_source_time(fps: float) -> None:
    pts = stamps(fps, 40)
    out = feed(pipeline(keyframe_seconds=0.5), jpegs(), pts)
    keys = [unit.pts for unit in out if unit.keyframe]
    # One IDR on the first picture at or after each half second of source time.
    expected = [min(t for t in pts if t >= pts[0] + k * HZ // 2) for k in range(len(keys))]
    assert keys == expected
    assert len(keys) == 1 + int((pts[-1] - pts[0]) / (HZ / 2))


@pytest.mark.parametrize(
    "pts",
    [stamps(12.5, 40), stamps(25, 40), stamps(30, 40), jittered(25, 40)],
    ids=["12.5fps", "25fps", "30fps", "jitter"],
)
def test_pts_out_equal_pts_in(pts: list[int]) -> None:
    out = feed(pipeline(), jpegs(), pts)
    assert [unit.pts for unit in out] == pts
    assert len(decode_h264(out)) == len(pts)


def test_pts_survive_a_rate_change_midway() -> None:
    pts = stamps(25, 20)
    pts += [pts[-1] + round((i + 1) * HZ / 12.5) for i in range(20)]
    out = feed(pipeline(), jpegs(), pts)
    assert [unit.pts for unit in out] == pts


def test_non_increasing_pts_are_dropped_and_counted() -> None:
    pts = [0, 3600, 3600, 7200, 5000, 10800]
    encode = pipeline()
    out = feed(encode, jpegs()[:6], pts)
    assert [unit.pts for unit in out] == [0, 3600, 7200, 10800]
    assert encode.counters.skipped_pts == 2
    decode_h264(out)


def test_sps_and_pps_precede_every_idr_and_joins_decode() -> None:
    out = feed(pipeline(keyframe_seconds=0.2), jpegs(), stamps(25, 40))
    keys = [i for i, unit in enumerate(out) if unit.keyframe]
    assert len(keys) == 8
    for index in keys:
        unit = out[index]
        types = nal_types(unit.annexb)
        assert types.index(NalType.SPS) < types.index(NalType.PPS) < types.index(NalType.IDR)
        assert unit.sps is not None
        assert unit.pps is not None
        assert unit.codec == codec_string_from_sps(unit.sps) == "avc1.42c01f"
        # A client joining here decodes everything from this IDR on.
        assert len(decode_h264(out[index:])) == len(out) - index
    assert all(u.sps is None and u.pps is None for u in out if not u.keyframe)


def test_sample_is_length_prefixed_without_parameter_sets() -> None:
    out = feed(pipeline(keyframe_seconds=0.2), jpegs(), stamps(25, 40))
    rebuilt = []
    for unit in out:
        pos, nals = 0, []
        while pos < len(unit.sample):
            length = int.from_bytes(unit.sample[pos : pos + 4], "big")
            pos += 4
            nals.append(unit.sample[pos : pos + length])
            pos += length
        assert pos == len(unit.sample)  # the lengths add up exactly
        types = [nal[0] & 0x1F for nal in nals]
        assert set(types) <= {NalType.SLICE, NalType.IDR}
        assert (NalType.IDR in types) == unit.keyframe
        assert all(not nal.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")) for nal in nals)
        # What an MP4 demuxer hands a decoder: avcC parameter sets, then the sample.
        head = to_annexb((unit.sps, unit.pps)) if unit.sps and unit.pps else b""
        rebuilt.append(head + to_annexb(nals))
    assert len(decode_h264(rebuilt)) == len(out)


def test_bad_jpegs_are_skipped_counted_and_do_not_stop_the_encode() -> None:
    good = jpegs()
    payloads = [good[0], good[1], b"\xff\xd8 not a jpeg", good[2][: len(good[2]) // 2]]
    payloads += [b"garbage", good[3], good[4]]
    pts = stamps(25, len(payloads))
    encode = pipeline()
    out = feed(encode, payloads, pts)
    assert [unit.pts for unit in out] == [pts[0], pts[1], pts[5], pts[6]]
    assert encode.counters.failed == 3
    assert encode.counters.frames_in == 7
    assert encode.counters.last_error is not None
    assert len(decode_h264(out)) == 4


def test_undecodable_jpeg_with_valid_headers_is_skipped() -> None:
    good = jpegs()[0]
    # Keep SOI..SOF and the EOI, wreck everything between (the decoder must fail).
    body = good.index(b"\xff\xda")
    broken = good[:body] + b"\xff\xda\x00\x02" + b"\xff\x00" * 8 + b"\xff\xd9"
    encode = pipeline()
    out = feed(encode, [good, broken, good], stamps(25, 3))
    assert encode.counters.failed + encode.counters.frames_out == 3
    assert len(decode_h264(out)) == encode.counters.frames_out >= 2


def test_max_fps_drops_closer_frames() -> None:
    encode = pipeline(max_fps=15)
    pts = stamps(30, 40)
    out = feed(encode, jpegs(), pts)
    assert [unit.pts for unit in out] == pts[::2]
    assert encode.counters.skipped_max_fps == 20


def test_max_fps_keeps_a_jittered_source_at_that_rate() -> None:
    encode = pipeline(max_fps=25)
    pts = wobbly(25, 40)
    out = feed(encode, jpegs(), pts)
    assert len(out) == 40
    assert encode.counters.skipped_max_fps == 0


def test_max_fps_between_rates_keeps_the_average() -> None:
    encode = pipeline(max_fps=20)
    pts = stamps(30, 40)
    out = feed(encode, jpegs(), pts)
    span = (out[-1].pts - out[0].pts) / HZ
    assert (len(out) - 1) / span == pytest.approx(20, rel=0.03)


@pytest.mark.parametrize(
    ("source", "expected"),
    [((1920, 1080), (1280, 720)), ((640, 480), (640, 480)), ((1600, 1200), (960, 720))],
)
def test_max_size_scales_down_only(source: tuple[int, int], expected: tuple[int, int]) -> None:
    jpeg = encode_jpeg(colourful(source))
    out = feed(pipeline(), [jpeg, jpeg], [0, 3600])
    assert {(unit.width, unit.height) for unit in out} == {expected}
    frames = decode_h264(out)
    assert {(f.width, f.height) for f in frames} == {expected}


def test_resolution_change_reopens_with_an_idr() -> None:
    small = moving_jpegs(6, (96, 64))
    payloads = list(jpegs()[:6]) + small
    pts = stamps(25, 12)
    encode = pipeline(keyframe_seconds=10.0)
    out = feed(encode, payloads, pts)
    assert [(u.width, u.height) for u in out] == [(160, 120)] * 6 + [(96, 64)] * 6
    assert [u.keyframe for u in out] == [True] + [False] * 5 + [True] + [False] * 5
    assert encode.counters.reopens == 1
    frames = decode_h264(out)
    assert [(f.width, f.height) for f in frames] == [(u.width, u.height) for u in out]


def test_unknown_encoder_falls_back_to_libx264_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        encode = pipeline(encoder="h264_nonexistent")
        out = feed(encode, jpegs()[:3], stamps(25, 3))
    assert encode.encoder_name == "libx264"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "h264_nonexistent" in warnings[0].getMessage()
    assert len(decode_h264(out)) == 3


def test_counters_snapshot() -> None:
    encode = pipeline(max_fps=15)
    feed(encode, jpegs()[:10], stamps(30, 10), force=[3])
    snap = encode.counters.snapshot()
    assert snap["frames_in"] == 10
    assert snap["frames_out"] == 5
    assert snap["skipped_max_fps"] == 5
    assert snap["failed"] == 0
    assert isinstance(snap["encode_ms_mean"], float)
    assert snap["last_error"] is None


def test_misuse_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        H264Pipeline(H264Settings(), source=StreamKind.AUDIO)
    with pytest.raises(LocalProtocolError):
        H264Settings(keyframe_seconds=0)
    with pytest.raises(LocalProtocolError):
        H264Settings(max_fps=0)


@pytest.mark.parametrize(
    ("max_size", "codec"), [((1280, 720), "avc1.42c01f"), ((1920, 1080), "avc1.42c028")]
)
def test_level_follows_the_output_size(max_size: tuple[int, int], codec: str) -> None:
    encode = pipeline(max_size=max_size)
    (unit,) = encode.encode(encode_jpeg(colourful((1920, 1080))), 0)
    assert unit.codec == encode.codec == codec
