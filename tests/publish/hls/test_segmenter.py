"""The segmenter's window, what it keeps fetchable and for how long, lookups, hints, audio."""

from __future__ import annotations

from itertools import pairwise

import pytest

from gateway.errors import LocalProtocolError
from gateway.media import NS_PER_SECOND
from gateway.publish.hls.live import media_playlist
from gateway.publish.hls.names import Kind, Resource, parse_name
from gateway.publish.hls.parts import PartStatus, SegmentCompleted
from gateway.publish.hls.playlist import render
from gateway.publish.hls.segmenter import Segmenter
from tests.mux.boxreader import parse

from .m3u8 import parse as read_playlist
from .streams import HZ, RATE, aac, feed, regular, segmenter, synthetic


def _listed_parts(seg: Segmenter) -> set[str]:
    playlist = read_playlist(render(media_playlist(seg)))
    return {part.uri for s in playlist.segments for part in s.parts}


def _fetchable(seg: Segmenter, name: str) -> bool:
    resource = parse_name(name)
    assert resource is not None
    return seg.lookup(resource) is not None


@pytest.mark.parametrize("window", [3.0, 5.5, None])
def test_the_window_never_gets_shorter_than_three_target_durations(window: float | None) -> None:
    seg = segmenter(window=window)
    wanted = 12.0 if window is None else window
    total = 0.0
    for frame in synthetic(regular(25, 30)):
        for event in seg.push_video(frame, frame.received_ns):
            if isinstance(event, SegmentCompleted):
                total += event.segment.duration / HZ
                listed = sum(s.duration for s in seg.segments) / HZ
                assert listed >= min(total, 3.0)
                assert listed >= min(total, wanted) - 1e-9
                assert listed < wanted + 1.0 + 1e-9  # one segment more at most
    assert read_playlist(render(media_playlist(seg))).duration >= 3.0


def test_a_window_below_three_target_durations_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        Segmenter(window=2.9)
    with pytest.raises(LocalProtocolError):
        Segmenter(part_target=1.1, segment_target=1.0)
    assert Segmenter(segment_target=1.5).target_duration == 2
    assert Segmenter(segment_target=2.0).target_duration == 2


def test_parts_stay_fetchable_three_target_durations_after_leaving_the_playlist() -> None:
    seg = segmenter(window=4)
    left: dict[str, int] = {}
    gone: dict[str, int] = {}
    listed: set[str] = set()
    for frame in synthetic(regular(25, 20)):
        now = frame.received_ns
        seg.push_video(frame, now)
        if not seg.started:
            continue
        current = _listed_parts(seg)
        for name in listed - current:
            left[name] = now
        listed = current
        for name, when in left.items():
            if name not in gone and not _fetchable(seg, name):
                gone[name] = now
                assert now - when >= 3 * NS_PER_SECOND  # §6.2.2
    assert len(left) > 40
    assert gone  # and then they are forgotten: what is held is bounded
    assert all(now - when < 9 * NS_PER_SECOND for name, when in left.items() if name not in gone)


def test_removed_segments_stay_fetchable_for_three_target_durations() -> None:
    seg = segmenter(window=4)
    removed: dict[int, int] = {}
    for frame in synthetic(regular(25, 20)):
        now = frame.received_ns
        before = {s.msn for s in seg.segments}
        seg.push_video(frame, now)
        for msn in before - {s.msn for s in seg.segments}:
            removed[msn] = now
        for msn, when in removed.items():
            assert (seg.segment(msn) is not None) == (now - when < 3 * NS_PER_SECOND)
    assert len(list(seg.held_segments())) <= 4 + 3 + 1
    assert len(removed) >= 10


def test_what_is_held_is_bounded_even_when_time_stands_still() -> None:
    seg = segmenter(window=3, max_segments=5)
    for frame in synthetic(regular(25, 20)):
        seg.push_video(frame, 0)
    assert len(list(seg.held_segments())) <= 5
    assert seg.init(0) is not None  # still needed


def test_lookups_share_the_encoded_buffers() -> None:
    frames = synthetic(regular(25, 4))
    audio_format, audio = aac(0, 4 * HZ)
    seg = segmenter(audio=audio_format)
    feed(seg, frames, audio)
    first = seg.segments[0]
    chunks = seg.lookup(Resource(Kind.SEGMENT, first.msn))
    assert chunks == first.chunks
    assert chunks == tuple(c for p in first.parts for c in p.chunks)  # a segment = its parts
    samples = {id(f.sample) for f in frames} | {id(f.payload) for f in audio}
    # Every chunk but the moof heads is a frame's own buffer: nothing was copied.
    for part in first.parts:
        assert part.chunks[0][4:8] == b"moof"
        assert all(id(chunk) in samples for chunk in part.chunks[1:])
    assert seg.lookup(Resource(Kind.PART, first.msn, 1)) == first.parts[1].chunks
    assert seg.lookup(Resource(Kind.INIT, 0)) == (seg.init(0),)
    assert seg.lookup(Resource(Kind.INIT, 1)) is None
    assert seg.lookup(Resource(Kind.SEGMENT, 99)) is None
    assert seg.lookup(Resource(Kind.PART, first.msn, 99)) is None
    with pytest.raises(LocalProtocolError):
        seg.lookup(Resource(Kind.MEDIA))


def test_the_hint_and_what_a_request_for_a_missing_part_gets() -> None:
    frames = synthetic(regular(25, 4))
    seg = segmenter()
    assert seg.part_status(0, 0) is PartStatus.MISSING  # nothing started yet
    for frame in frames[:25]:  # 1 s: segment 0's five parts
        seg.push_video(frame, 0)
    assert [p.index for p in seg.building] == [0, 1, 2, 3, 4]
    assert seg.hint() == (1, 0)  # the next picture is due to be the next IDR
    assert seg.part_status(1, 0) is PartStatus.PENDING
    assert seg.part_status(0, 5) is PartStatus.PENDING  # unless it is not
    assert seg.part_status(0, 4) is PartStatus.AVAILABLE
    assert seg.part_status(0, 6) is PartStatus.MISSING
    assert seg.part_status(2, 0) is PartStatus.MISSING
    events = seg.push_video(frames[25], 0)  # the IDR: segment 0 is complete
    assert [type(e) for e in events] == [SegmentCompleted]
    assert seg.hint() == (1, 0)  # the open part
    assert seg.part_status(0, 5) is PartStatus.MISSING  # the guess that did not happen
    for frame in frames[26:30]:
        seg.push_video(frame, 0)
    assert seg.part_status(1, 0) is PartStatus.AVAILABLE
    assert seg.hint() == (1, 1)


def test_audio_goes_into_the_part_whose_video_it_starts_in_when_it_has_arrived() -> None:
    frames = synthetic(regular(25, 6))
    audio_format, audio = aac(-HZ // 2, 6 * HZ)
    seg = segmenter(audio=audio_format)
    fed = feed(seg, frames, audio, audio_lag_ns=120_000_000)
    runs = []
    for event in fed.parts:
        part = event.part
        moof = parse(bytes(part.chunks[0])[:-8])[0]
        for traf in moof.find("traf"):
            if traf.one("tfhd").fields["track_id"] == 2:
                start = traf.one("tfdt").fields["base_decode_time"]
                durations = [s["duration"] for s in traf.one("trun").fields["samples"]]
                runs.append((start, sum(durations)))
                end = (part.start + part.duration) * RATE // HZ
                assert start + sum(durations) - durations[-1] < end  # starts before the end
    # One continuous audio track: each part's audio starts where the last one's ended.
    assert all(b[0] == a[0] + a[1] for a, b in pairwise(runs))
    assert runs[0][0] < 1024  # the first frame at or after the first picture
    assert seg.audio is not None
    assert seg.audio.dropped == 24  # half a second of audio before the first picture
    # Arriving 120 ms late, the audio trails the video by less than a part.
    last = fed.parts[-1].part
    assert (last.start + last.duration) * RATE // HZ - (runs[-1][0] + runs[-1][1]) < 0.2 * RATE


def test_audio_without_video_is_bounded() -> None:
    audio_format, audio = aac(0, 15 * HZ)
    seg = Segmenter(audio=audio_format, max_pending_audio=100)
    for frame in audio:
        assert seg.push_audio(frame, 0) == []
    assert seg.audio is not None
    assert seg.audio.dropped == len(audio) - 100


def test_version_counts_playlist_changes_and_pdt_starts_at_the_first_picture() -> None:
    frames = synthetic(regular(25, 2))
    seg = segmenter()
    versions = []
    for frame in frames:
        events = seg.push_video(frame, 0)
        versions.append(seg.version)
        assert (seg.version > (versions[-2] if len(versions) > 1 else 0)) == bool(events)
    assert seg.building_program_date_time == (frames[25].received_ns + seg.wall_offset_ns)
