"""Fragments (moof + mdat): every field parsed back, data offsets checked against the bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import LocalProtocolError
from gateway.media import Payload
from gateway.mux import fmp4
from gateway.mux.fmp4 import Sample, TrackRun
from tests.mux.boxreader import Box, parse

KEY = 0x0200_0000  # sample_depends_on = 2 (§8.8.3.1)
NON_KEY = 0x0101_0000  # depends_on = 1, sample_is_non_sync_sample

#: Examples run on a busy shared machine: check results, not timing.
NO_DEADLINE = settings(deadline=None)


def joined(parts: list[Payload]) -> bytes:
    return b"".join(bytes(part) for part in parts)


def check_fragment(data: bytes, sequence_number: int, runs: list[TrackRun]) -> tuple[Box, Box]:
    """Parse one fragment and check every field and every sample's bytes against ``runs``."""
    moof, mdat = parse(data)
    assert (moof.type, mdat.type) == (b"moof", b"mdat")
    assert moof.start == 0
    assert moof.one("mfhd").fields == {"version": 0, "flags": 0, "sequence_number": sequence_number}
    trafs = moof.find("traf")
    assert len(trafs) == len(runs)
    payload_total = sum(len(s.data) for run in runs for s in run.samples)
    assert mdat.size == mdat.header_size + payload_total
    expected_offset = moof.size + mdat.header_size
    for traf, run in zip(trafs, runs, strict=True):
        assert [child.type for child in traf.children] == [b"tfhd", b"tfdt", b"trun"]
        assert traf.one("tfhd").fields == {
            "version": 0,
            "flags": 0x020000,
            "track_id": run.track_id,
        }
        assert traf.one("tfdt").fields == {
            "version": 1,
            "flags": 0,
            "base_decode_time": run.base_decode_time,
        }
        trun = traf.one("trun").fields
        with_cto = any(s.composition_offset for s in run.samples)
        assert trun["flags"] == (0xF01 if with_cto else 0x701)
        assert trun["version"] == (1 if with_cto else 0)
        assert trun["sample_count"] == len(run.samples)
        # default-base-is-moof: the offset counts from the moof's first byte.
        assert trun["data_offset"] == expected_offset
        position = moof.start + trun["data_offset"]
        for entry, sample in zip(trun["samples"], run.samples, strict=True):
            assert entry["duration"] == sample.duration
            assert entry["size"] == len(sample.data)
            assert entry["flags"] == (KEY if sample.keyframe else NON_KEY)
            assert entry.get("cto", 0) == sample.composition_offset
            assert data[position : position + entry["size"]] == bytes(sample.data)
            position += entry["size"]
        expected_offset += sum(len(s.data) for s in run.samples)
    assert expected_offset == len(data)
    return moof, mdat


def test_two_tracks_in_one_fragment() -> None:
    video = TrackRun(1, 90_000, [Sample(b"I" * 50, 3000, True), Sample(b"P" * 7, 3000, False)])
    audio = TrackRun(
        2, 48_000, [Sample(b"a" * 9, 1024), Sample(b"b" * 11, 1024), Sample(b"c", 1024)]
    )
    parts = fmp4.fragment(7, [video, audio])
    # The payloads are handed back uncopied, for writev.
    assert parts[1:] == [s.data for s in (*video.samples, *audio.samples)]
    assert all(
        part is s.data for part, s in zip(parts[1:], (*video.samples, *audio.samples), strict=True)
    )
    moof, _ = check_fragment(joined(parts), 7, [video, audio])
    first_audio = moof.find("traf")[1].one("trun").fields["data_offset"]
    assert joined(parts)[first_audio : first_audio + 9] == b"a" * 9


def test_memoryview_payloads_and_empty_samples() -> None:
    buffer = bytearray(b"0123456789")
    run = TrackRun(3, 0, [Sample(memoryview(buffer)[2:6], 1), Sample(b"", 1), Sample(b"xy", 1)])
    parts = fmp4.fragment(1, [run])
    assert len(parts) == 3  # the empty sample adds nothing to write
    assert isinstance(parts[1], memoryview)
    check_fragment(joined(parts), 1, [run])


def test_composition_offsets_make_trun_version_1() -> None:
    video = TrackRun(
        1,
        0,
        [
            Sample(b"I", 3000, True, 3000),
            Sample(b"B", 3000, False, -3000),
            Sample(b"P", 3000, False),
        ],
    )
    audio = TrackRun(2, 0, [Sample(b"a", 1024)])
    moof, _ = check_fragment(joined(fmp4.fragment(2, [video, audio])), 2, [video, audio])
    ctos = [entry["cto"] for entry in moof.find("traf")[0].one("trun").fields["samples"]]
    assert ctos == [3000, -3000, 0]


def test_64_bit_decode_times() -> None:
    run = TrackRun(1, 2**40 + 5, [Sample(b"x", 1)])
    check_fragment(joined(fmp4.fragment(2**32 - 1, [run])), 2**32 - 1, [run])


@pytest.mark.parametrize(
    "runs",
    [
        [],
        [TrackRun(1, 0, [])],
        [TrackRun(1, 0, [Sample(b"x", 2**32)])],
        [TrackRun(1, 0, [Sample(b"x", -1)])],
        [TrackRun(1, 0, [Sample(b"x", 1, True, 2**31)])],
        [TrackRun(1, -1, [Sample(b"x", 1)])],
        [TrackRun(1, 2**64, [Sample(b"x", 1)])],
        [TrackRun(2**32, 0, [Sample(b"x", 1)])],
    ],
)
def test_fragment_rejects_misuse(runs: list[TrackRun]) -> None:
    with pytest.raises(LocalProtocolError):
        fmp4.fragment(1, runs)


def test_sequence_number_is_32_bits() -> None:
    with pytest.raises(LocalProtocolError):
        fmp4.fragment(2**32, [TrackRun(1, 0, [Sample(b"x", 1)])])


def test_data_offsets_must_fit_31_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = [TrackRun(1, 0, [Sample(b"x" * 100, 1)]), TrackRun(2, 0, [Sample(b"y", 1)])]
    parts = fmp4.fragment(1, runs)
    second_offset = len(parts[0]) + 100
    monkeypatch.setattr(fmp4, "MAX_DATA_OFFSET", second_offset)
    fmp4.fragment(1, runs)
    monkeypatch.setattr(fmp4, "MAX_DATA_OFFSET", second_offset - 1)
    with pytest.raises(LocalProtocolError, match="32-bit trun data_offset"):
        fmp4.fragment(1, runs)


samples = st.builds(
    Sample,
    data=st.integers(0, 300).map(lambda n: bytes(i % 251 for i in range(n))),
    duration=st.integers(0, 2**32 - 1),
    keyframe=st.booleans(),
    composition_offset=st.one_of(st.just(0), st.integers(-(2**31), 2**31 - 1)),
)
runs = st.lists(
    st.builds(
        TrackRun,
        track_id=st.integers(1, 2**32 - 1),
        base_decode_time=st.integers(0, 2**64 - 1),
        samples=st.lists(samples, min_size=1, max_size=20),
    ),
    min_size=1,
    max_size=4,
)


@NO_DEADLINE
@given(st.integers(0, 2**32 - 1), runs)
def test_any_fragment_parses_back(sequence_number: int, track_runs: list[TrackRun]) -> None:
    # Tag each payload with its position so a wrong offset cannot land on equal bytes.
    tagged = [
        TrackRun(run.track_id, run.base_decode_time, [
            Sample(bytes([r, i]) + s.data, s.duration, s.keyframe, s.composition_offset)
            for i, s in enumerate(run.samples)
        ])
        for r, run in enumerate(track_runs)
    ]  # fmt: skip
    parts = fmp4.fragment(sequence_number, tagged)
    assert len(parts) == 1 + sum(len(run.samples) for run in tagged)
    check_fragment(joined(parts), sequence_number, tagged)
