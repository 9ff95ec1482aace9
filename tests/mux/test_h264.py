"""H.264 NAL helpers: Annex-B and length-prefixed framing, SPS fields, the avcC record."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.mux import h264
from tests.mux.boxfields import Cursor, _avcc
from tests.mux.samples import (
    AVCC_HIGH,
    PPS_BASELINE,
    PPS_HIGH,
    SPS_444,
    SPS_BASELINE,
    SPS_HIGH,
)

IDR = b"\x65\x88\x84\x00\x33"
SLICE = b"\x41\x9a\x02"

#: Examples run on a busy shared machine: check results, not timing.
NO_DEADLINE = settings(deadline=None)


def units(found: list[memoryview]) -> list[bytes]:
    return [bytes(nal) for nal in found]


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"\x00\x00\x00\x01" + SPS_HIGH + b"\x00\x00\x01" + PPS_HIGH, [SPS_HIGH, PPS_HIGH]),
        (b"\x00\x00\x01" + IDR, [IDR]),
        # leading_zero_8bits, trailing_zero_8bits and 4-byte start codes between units.
        (
            b"\x00\x00\x00\x00\x00\x01" + IDR + b"\x00\x00\x00\x00\x01" + SLICE + b"\x00\x00",
            [IDR, SLICE],
        ),
        # 00 00 00 and 00 00 03 inside a unit are left alone (only 00 00 01 splits).
        (b"\x00\x00\x01\x65\x00\x00\x03\x01\x80", [b"\x65\x00\x00\x03\x01\x80"]),
    ],
)
def test_split_annexb(stream: bytes, expected: list[bytes]) -> None:
    assert units(h264.split_annexb(stream)) == expected
    assert units(h264.split_annexb(bytearray(stream))) == expected
    assert units(h264.split_annexb(memoryview(stream))) == expected


def test_split_annexb_returns_views_of_the_input() -> None:
    stream = b"\x00\x00\x01" + IDR
    (nal,) = h264.split_annexb(stream)
    assert isinstance(nal, memoryview)
    assert nal.obj is stream


def test_long_zero_runs_are_stripped() -> None:
    stream = b"\x00\x00\x01" + IDR + bytes(100_000) + b"\x00\x00\x01" + SLICE + bytes(9)
    assert units(h264.split_annexb(stream)) == [IDR, SLICE]


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"", "does not start with a start code"),
        (b"\x65\x00\x00\x01\x65", "does not start with a start code"),
        (b"\x00\x00\x02\x65", "does not start with a start code"),
        (b"\x00\x00\x01", "empty H.264 NAL unit"),
        (b"\x00\x00\x01\x00\x00\x00", "empty H.264 NAL unit"),
        (b"\x00\x00\x01\x00\x00\x01\x65", "empty H.264 NAL unit"),
        (b"\x00\x00\x01\xe5\x01", "forbidden_zero_bit"),
    ],
)
def test_split_annexb_rejects(stream: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        h264.split_annexb(stream)


def test_unit_counts_are_bounded() -> None:
    stream = h264.to_annexb([SLICE] * 5)
    assert len(h264.split_annexb(stream, max_units=5)) == 5
    with pytest.raises(RemoteProtocolError, match="more than 4 NAL units"):
        h264.split_annexb(stream, max_units=4)
    sample = h264.to_length_prefixed([SLICE] * 5)
    with pytest.raises(RemoteProtocolError, match="more than 4 NAL units"):
        h264.split_length_prefixed(sample, max_units=4)


def test_length_prefixed_round_trip() -> None:
    sample = h264.to_length_prefixed([SPS_HIGH, IDR])
    assert sample == b"\x00\x00\x00\x16" + SPS_HIGH + b"\x00\x00\x00\x05" + IDR
    assert units(h264.split_length_prefixed(sample)) == [SPS_HIGH, IDR]
    two = b"\x00\x05" + IDR + b"\x00\x03" + SLICE
    assert units(h264.split_length_prefixed(two, length_size=2)) == [IDR, SLICE]
    assert units(h264.split_length_prefixed(b"\x03" + SLICE, length_size=1)) == [SLICE]


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        (b"", "truncated NAL unit length"),
        (b"\x00\x00\x00", "truncated NAL unit length"),
        (b"\x00\x00\x00\x06" + IDR, "overruns the sample"),
        (b"\x00\x00\x00\x00", "empty H.264 NAL unit"),
        (b"\x00\x00\x00\x05" + IDR + b"\x00", "truncated NAL unit length"),
        (b"\x00\x00\x00\x01\x80", "forbidden_zero_bit"),
    ],
)
def test_split_length_prefixed_rejects(sample: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        h264.split_length_prefixed(sample)


def test_length_size_must_be_1_2_or_4() -> None:
    with pytest.raises(LocalProtocolError, match="must be 1, 2 or 4"):
        h264.split_length_prefixed(b"\x00\x00\x05" + IDR, length_size=3)


def test_annexb_to_sample_drops_parameter_sets_and_delimiters() -> None:
    access_unit = h264.to_annexb([b"\x09\xf0", SPS_HIGH, PPS_HIGH, b"\x06\x05\x01\x80", IDR])
    sample = h264.annexb_to_sample(access_unit)
    assert units(h264.split_length_prefixed(sample)) == [b"\x06\x05\x01\x80", IDR]
    assert h264.sample_to_annexb(sample) == h264.to_annexb([b"\x06\x05\x01\x80", IDR])
    everything = h264.annexb_to_sample(access_unit, drop=frozenset())
    assert len(h264.split_length_prefixed(everything)) == 5
    with pytest.raises(RemoteProtocolError, match="no picture data"):
        h264.annexb_to_sample(h264.to_annexb([SPS_HIGH, PPS_HIGH]))


def test_split_access_unit_finds_parameter_sets_and_idr_in_one_pass() -> None:
    key = h264.split_access_unit(
        h264.to_annexb([b"\x09\xf0", SPS_HIGH, PPS_HIGH, SPS_BASELINE, IDR]), max_units=5
    )
    assert (key.idr, key.sps, key.pps) == (True, SPS_HIGH, PPS_HIGH)  # the first of each
    assert key.sample == h264.to_length_prefixed([IDR])
    delta = h264.split_access_unit(h264.to_annexb([SLICE]), drop=frozenset())
    assert (delta.idr, delta.sps, delta.pps) == (False, None, None)
    assert delta.sample == h264.to_length_prefixed([SLICE])
    with pytest.raises(RemoteProtocolError, match="more than 4 NAL units"):
        h264.split_access_unit(h264.to_annexb([SLICE] * 5), max_units=4)


def test_parameter_sets() -> None:
    found = h264.parameter_sets(
        h264.split_annexb(h264.to_annexb([IDR, SPS_HIGH, PPS_HIGH, PPS_BASELINE]))
    )
    assert found == (SPS_HIGH, PPS_HIGH)
    with pytest.raises(RemoteProtocolError, match="no SPS and PPS"):
        h264.parameter_sets([SPS_HIGH, IDR])


@pytest.mark.parametrize(
    ("sps", "expected", "codecs"),
    [
        (SPS_HIGH, h264.SpsInfo(100, 0x00, 13, 1, 0, 0), "avc1.64000d"),
        (SPS_BASELINE, h264.SpsInfo(66, 0xC0, 30), "avc1.42c01e"),
        (SPS_444, h264.SpsInfo(244, 0x00, 30, 3, 2, 2), "avc1.f4001e"),
    ],
)
def test_parse_sps(sps: bytes, expected: h264.SpsInfo, codecs: str) -> None:
    assert h264.parse_sps(sps) == expected
    assert h264.codec_string_from_sps(sps) == codecs


@pytest.mark.parametrize(
    ("sps", "message"),
    [
        (PPS_HIGH, "not an H.264 sequence parameter set"),
        (SPS_HIGH[:3], "not an H.264 sequence parameter set"),
        (SPS_HIGH[:4], "SPS ends inside a field"),
        (bytes((0x67, 100, 0, 30)) + bytes(8), "Exp-Golomb code is too long"),
        (bytes((0x67, 100, 0, 30, 0b1001_0100)), "chroma_format_idc 4 is out of range"),
        (bytes((0x67, 100, 0, 30, 0b1010_0001, 0b1101_0000)), "bit depth is out of range"),
    ],
)
def test_parse_sps_rejects(sps: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        h264.parse_sps(sps)


def test_avcc_from_parameter_sets_high_profile() -> None:
    fields = _avcc(Cursor(AVCC_HIGH))
    assert fields["version"] == 1
    assert (fields["profile"], fields["compat"], fields["level"]) == (100, 0, 13)
    assert fields["length_size"] == 4
    assert fields["length_reserved"] == 0b111111
    assert fields["sps_reserved"] == 0b111
    assert fields["sps"] == [SPS_HIGH]
    assert fields["pps"] == [PPS_HIGH]
    # chroma_format 1 (4:2:0), 8-bit luma and chroma, no SPS extensions; reserved bits set.
    assert fields["ext"] == bytes((0xFC | 1, 0xF8, 0xF8, 0))


def test_avcc_extension_bytes_follow_the_profile() -> None:
    baseline = h264.avcc_from_parameter_sets(SPS_BASELINE, PPS_BASELINE)
    assert _avcc(Cursor(baseline))["ext"] == b""
    four_four_four = h264.avcc_from_parameter_sets(SPS_444, PPS_HIGH)
    assert _avcc(Cursor(four_four_four))["ext"] == bytes((0xFC | 3, 0xF8 | 2, 0xF8 | 2, 0))


def test_parse_avcc() -> None:
    config = h264.parse_avcc(AVCC_HIGH)
    assert config == h264.AvcConfig(100, 0, 13, 4, (SPS_HIGH,), (PPS_HIGH,))


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (b"", "not an AVCDecoderConfigurationRecord"),
        (b"\x02" + AVCC_HIGH[1:], "not an AVCDecoderConfigurationRecord"),
        (AVCC_HIGH[:4] + b"\xfe" + AVCC_HIGH[5:], "lengthSizeMinusOne of 2"),
        (AVCC_HIGH[:8], "empty or truncated"),
        (AVCC_HIGH[:6] + b"\x00", "truncated in a parameter set length"),
        (AVCC_HIGH[:5] + b"\xe0\x01\x00\x01\x68", "lacks an SPS or a PPS"),
        (AVCC_HIGH[:5] + b"\xe1\x00\x01\x67", "ends before its PPS count"),
    ],
)
def test_parse_avcc_rejects(record: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        h264.parse_avcc(record)


def test_avcc_from_extradata_accepts_both_forms() -> None:
    annexb = h264.to_annexb([SPS_HIGH, PPS_HIGH])
    assert h264.avcc_from_extradata(annexb) == AVCC_HIGH
    assert h264.avcc_from_extradata(AVCC_HIGH) == AVCC_HIGH
    with pytest.raises(RemoteProtocolError):
        h264.avcc_from_extradata(b"\x01\x64")


def test_avcc_rejects_a_bad_pps() -> None:
    with pytest.raises(RemoteProtocolError, match=r"not an H\.264 picture parameter set"):
        h264.avcc_from_parameter_sets(SPS_HIGH, IDR)


def escaped(body: bytes) -> bytes:
    """Return ``body`` with emulation prevention applied and a stop bit, as an encoder would."""
    out = bytearray()
    zeros = 0
    for byte in body:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    out.append(0x80)  # rbsp_stop_one_bit: a unit never ends in 0x00
    return bytes(out)


nal_units = st.builds(
    lambda header, body: bytes((header,)) + escaped(body),
    st.integers(0x01, 0x7F),
    st.binary(max_size=64),
)


@NO_DEADLINE
@given(st.lists(nal_units, min_size=1, max_size=12))
def test_framings_round_trip(nals: list[bytes]) -> None:
    assert units(h264.split_annexb(h264.to_annexb(nals))) == nals
    assert units(h264.split_length_prefixed(h264.to_length_prefixed(nals))) == nals
    sample = h264.annexb_to_sample(h264.to_annexb(nals), drop=frozenset())
    assert units(h264.split_length_prefixed(sample)) == nals


@NO_DEADLINE
@given(st.binary(max_size=300))
def test_any_annexb_input_splits_or_raises(data: bytes) -> None:
    try:
        found = h264.split_annexb(data)
    except RemoteProtocolError:
        return
    for nal in found:
        assert nal
        assert not nal[0] & 0x80
        assert nal[-1] != 0
        assert b"\x00\x00\x01" not in bytes(nal)


@NO_DEADLINE
@given(st.binary(max_size=300), st.sampled_from([1, 2, 4]))
def test_any_sample_splits_or_raises(data: bytes, length_size: int) -> None:
    try:
        found = h264.split_length_prefixed(data, length_size=length_size)
    except RemoteProtocolError:
        return
    assert sum(len(nal) + length_size for nal in found) == len(data)


@NO_DEADLINE
@given(st.binary(max_size=120))
def test_any_record_or_sps_parses_or_raises(data: bytes) -> None:
    for parse in (h264.parse_avcc, h264.parse_sps, h264.avcc_from_extradata):
        try:
            parse(data)
        except RemoteProtocolError:
            pass
