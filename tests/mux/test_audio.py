"""Audio configurations: AudioSpecificConfig, esds, OpusHead and dOps, parsed back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.mux import audio
from tests.mux.boxreader import parse
from tests.mux.samples import ASC_48K_MONO, OPUS_HEAD_MONO

#: Examples run on a busy shared machine: check results, not timing.
NO_DEADLINE = settings(deadline=None)


@pytest.mark.parametrize(
    ("rate", "channels", "expected"),
    [(48000, 1, ASC_48K_MONO), (44100, 2, bytes.fromhex("1210")), (8000, 1, bytes.fromhex("1588"))],
)
def test_audio_specific_config(rate: int, channels: int, expected: bytes) -> None:
    assert audio.audio_specific_config(rate, channels) == expected
    assert audio.parse_audio_specific_config(expected) == audio.AacConfig(2, rate, channels)


def test_every_table_rate_round_trips() -> None:
    for rate in audio.AAC_SAMPLE_RATES:
        asc = audio.audio_specific_config(rate, 2)
        assert audio.parse_audio_specific_config(asc).sample_rate == rate


def test_audio_specific_config_escapes() -> None:
    # audioObjectType 31 -> 32 + 6 bits (here 42 = USAC); explicit 24-bit rate (index 15).
    bits = 31 << 43 | 10 << 37 | 15 << 33 | 50000 << 9 | 1 << 5
    asc = bits.to_bytes(6, "big")
    config = audio.parse_audio_specific_config(asc)
    assert (config.object_type, config.sample_rate) == (42, 50000)


@pytest.mark.parametrize(
    ("asc", "message"),
    [
        (b"\x11", "shorter than two bytes"),
        (bytes.fromhex("1688"), "frequency index 13 is reserved"),
        (bytes.fromhex("0188"), "no object type or rate"),
        (bytes.fromhex("1780"), "is truncated"),
    ],
)
def test_parse_audio_specific_config_rejects(asc: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        audio.parse_audio_specific_config(asc)


def test_audio_specific_config_rejects_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        audio.audio_specific_config(47999, 1)
    with pytest.raises(LocalProtocolError):
        audio.audio_specific_config(48000, 0)


def test_aac_codec_string() -> None:
    assert audio.aac_codec_string() == "mp4a.40.2"
    assert audio.aac_codec_string(ASC_48K_MONO) == "mp4a.40.2"
    he_aac = (5 << 11 | 6 << 7 | 2 << 3).to_bytes(2, "big")
    assert audio.aac_codec_string(he_aac) == "mp4a.40.5"


def test_esds_fields() -> None:
    (esds,) = parse(audio.esds_box(ASC_48K_MONO, avg_bitrate=64000, max_bitrate=96000))
    assert esds.type == b"esds"
    assert esds.fields == {
        "version": 0,
        "flags": 0,
        "es_id": 0,
        "object_type": 0x40,
        "stream_type": 5,
        "upstream": 0,
        "reserved": 1,
        "buffer_size": 0,
        "max_bitrate": 96000,
        "avg_bitrate": 64000,
        "asc": ASC_48K_MONO,
        "sl_predefined": b"\x02",
    }


def test_esds_descriptor_sizes_above_127_use_continuation_bytes() -> None:
    long_asc = ASC_48K_MONO + bytes(200)
    (esds,) = parse(audio.esds_box(long_asc))
    assert esds.fields["asc"] == long_asc
    # tag 0x05, then size 202 as 0x81 0x4a
    assert b"\x05\x81\x4a" + long_asc in esds.payload


def test_opus_head_round_trip() -> None:
    config = audio.parse_opus_head(OPUS_HEAD_MONO)
    assert config == audio.OpusConfig(channels=1, pre_skip=312, input_sample_rate=48000)
    assert audio.opus_head(1, pre_skip=312) == OPUS_HEAD_MONO
    assert audio.parse_opus_head(audio.opus_head(2, pre_skip=0)).channels == 2


def test_dops_family_0() -> None:
    (dops,) = parse(audio.dops_box(audio.parse_opus_head(OPUS_HEAD_MONO)))
    assert dops.type == b"dOps"
    assert dops.fields == {
        "version": 0,
        "channels": 1,
        "pre_skip": 312,
        "input_sample_rate": 48000,
        "output_gain": 0,
        "family": 0,
    }
    # Big-endian, unlike the little-endian OpusHead.
    assert dops.payload == bytes.fromhex("00 01 0138 0000bb80 0000 00")


def test_dops_family_1_carries_the_mapping_table() -> None:
    head = b"OpusHead" + bytes((1, 6)) + (312).to_bytes(2, "little") + (44100).to_bytes(4, "little")
    head += (-256).to_bytes(2, "little", signed=True) + bytes((1, 4, 2, 0, 4, 1, 2, 3, 5))
    config = audio.parse_opus_head(head)
    assert (config.mapping_family, config.stream_count, config.coupled_count) == (1, 4, 2)
    (dops,) = parse(audio.dops_box(config))
    assert dops.fields == {
        "version": 0,
        "channels": 6,
        "pre_skip": 312,
        "input_sample_rate": 44100,
        "output_gain": -256,
        "family": 1,
        "stream_count": 4,
        "coupled_count": 2,
        "mapping": bytes((0, 4, 1, 2, 3, 5)),
    }


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"OpusHead\x01\x01", "not an OpusHead packet"),
        (b"OpusTags" + OPUS_HEAD_MONO[8:], "not an OpusHead packet"),
        (OPUS_HEAD_MONO[:8] + b"\x10" + OPUS_HEAD_MONO[9:], "version 16"),
        (OPUS_HEAD_MONO[:9] + b"\x00" + OPUS_HEAD_MONO[10:], "0 channels"),
        (OPUS_HEAD_MONO[:9] + b"\x03" + OPUS_HEAD_MONO[10:], "at most two channels"),
        (OPUS_HEAD_MONO[:-1] + b"\x01\x01\x00", "mapping table is malformed"),
        (OPUS_HEAD_MONO[:-1] + b"\x01\x01\x02\x00", "mapping table is malformed"),
    ],
)
def test_parse_opus_head_rejects(head: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        audio.parse_opus_head(head)


def test_opus_head_rejects_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        audio.opus_head(3)
    with pytest.raises(LocalProtocolError, match="out of range"):
        audio.dops_box(audio.OpusConfig(channels=1, pre_skip=70000))
    with pytest.raises(LocalProtocolError, match="one entry per channel"):
        audio.dops_box(audio.OpusConfig(3, 0, mapping_family=1, stream_count=2, coupled_count=1))


@NO_DEADLINE
@given(st.binary(max_size=40))
def test_any_config_parses_or_raises(data: bytes) -> None:
    for parse_config in (audio.parse_audio_specific_config, audio.parse_opus_head):
        try:
            parse_config(data)
        except RemoteProtocolError:
            pass
