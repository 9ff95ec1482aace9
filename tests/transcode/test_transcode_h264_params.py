"""H.264 encode helpers: the sample form, codec string, output size, levels, options."""

from __future__ import annotations

import av
import pytest

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.mux.h264 import NalType, codec_string_from_sps, split_access_unit, to_annexb
from gateway.transcode.h264_encoder import NOT_IN_SAMPLE, VUI, open_encoder, x264_options
from gateway.transcode.h264_params import LEVELS, LIBX264, H264Settings, choose_level, output_size

SPS = bytes([0x67, 0x42, 0xC0, 0x1F, 0xDA, 0x02])
PPS = bytes([0x68, 0xCE, 0x0F, 0xC8])
IDR = bytes([0x65, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01, 0x7F])
SEI = bytes([0x06, 0x05, 0x01, 0xAA, 0x80])
SLICE = bytes([0x41, 0x9A, 0x02])


def test_samples_hold_slices_alone() -> None:
    # The encoder's drop set: parameter sets, x264's SEI banner, delimiters, filler.
    filler = bytes([NalType.FILLER, 0xFF, 0x80])
    key = split_access_unit(to_annexb([SPS, PPS, SEI, IDR, filler]), drop=NOT_IN_SAMPLE)
    assert key.idr
    assert (key.sps, key.pps) == (SPS, PPS)
    assert key.sample == len(IDR).to_bytes(4, "big") + IDR
    delta = split_access_unit(to_annexb([bytes([NalType.AUD, 0xF0]), SLICE]), drop=NOT_IN_SAMPLE)
    assert (delta.idr, delta.sps, delta.pps) == (False, None, None)
    assert delta.sample == len(SLICE).to_bytes(4, "big") + SLICE


def test_codec_string() -> None:
    assert codec_string_from_sps(SPS) == "avc1.42c01f"
    assert codec_string_from_sps(bytes([0x67, 0x42, 0xE0, 0x28])) == "avc1.42e028"
    with pytest.raises(RemoteProtocolError):
        codec_string_from_sps(PPS)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ((1920, 1080), (1280, 720)),
        ((1280, 720), (1280, 720)),
        ((640, 480), (640, 480)),
        ((1600, 1200), (960, 720)),
        ((720, 1280), (404, 720)),
        ((641, 481), (640, 480)),
        ((3840, 2160), (1280, 720)),
    ],
)
def test_output_size(source: tuple[int, int], expected: tuple[int, int]) -> None:
    assert output_size(source, (1280, 720)) == expected


def test_output_size_refuses_empty_source() -> None:
    with pytest.raises(LocalProtocolError):
        output_size((0, 480), (1280, 720))


@pytest.mark.parametrize(
    ("size", "fps", "bitrate", "name"),
    [
        ((160, 120), 25, 0, "3.1"),
        ((1280, 720), 30, 0, "3.1"),
        ((1280, 720), 31, 0, "3.2"),
        ((1280, 720), 60, 0, "3.2"),
        ((1280, 720), 25, 16_000, "3.2"),
        ((1920, 1080), 30, 0, "4"),
        ((1920, 1080), 30, 30_000, "4.1"),
        ((1920, 1080), 60, 0, "4.2"),
        ((2560, 1440), 30, 0, "5"),
        ((3840, 2160), 30, 0, "5.1"),
        ((3840, 2160), 60, 0, "5.2"),
        ((8192, 4320), 60, 0, "5.2"),  # beyond every level: the highest
    ],
)
def test_level_table(size: tuple[int, int], fps: float, bitrate: int, name: str) -> None:
    assert choose_level(size, fps, bitrate).name == name


def test_levels_ascend() -> None:
    assert [level.idc for level in LEVELS] == sorted(level.idc for level in LEVELS)


def test_x264_options() -> None:
    options = x264_options(H264Settings(), LEVELS[0])
    assert options["tune"] == "zerolatency"
    assert options["profile"] == "baseline"
    params = dict(item.split("=") for item in options["x264-params"].split(":"))
    assert params["keyint"] == "infinite"
    assert params["scenecut"] == "0"
    assert params["repeat-headers"] == "1"
    assert params["level"] == "3.1"
    assert params["crf"] == "23"
    assert {key: params[key] for key in VUI} == VUI
    capped = x264_options(H264Settings(bitrate_kbps=800), LEVELS[0])["x264-params"]
    assert "vbv-maxrate=800" in capped
    assert "crf" not in capped


@pytest.mark.parametrize("bitrate", [0, 800])
def test_libx264_takes_every_option(bitrate: int) -> None:
    # x264 logs a bad x264-params entry ("Error parsing option") and opens anyway; the
    # option is then silently lost, so read libav's log while opening.
    level = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture() as logs:
            open_encoder(LIBX264, H264Settings(bitrate_kbps=bitrate), (320, 240), 25.0)
    finally:
        av.logging.set_level(level)
    assert [text for _, _, text in logs if "rror" in text] == []
