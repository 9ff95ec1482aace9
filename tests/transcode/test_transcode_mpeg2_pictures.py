"""Mpeg2Pictures: a camera's MPEG-2 frames (ES, PS, TS) to whole stamped pictures."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable

import pytest

from gateway.demux.mpeg2 import PictureType
from gateway.demux.mpeg2_es import PictureReader
from gateway.errors import RemoteProtocolError
from gateway.ingest.kinds import PtsStamper, mpeg2_frame_data
from gateway.media import Frame, StreamKind
from gateway.transcode.h264 import H264Pipeline
from gateway.transcode.h264_params import H264Settings
from gateway.transcode.mpeg2_pictures import CONTAINERS, Mpeg2Pictures, SourcePicture
from tests.demux.mpeg2_helpers import feed, ffmpeg_stream, sim_stream, units_of

from .h264_helpers import decode_h264

#: Ticks between two pictures at 25 fps.
PERIOD = 3600
#: Streams: FFmpeg's packs split pictures (PS) and at 160x120 hold several; FFmpeg's TS
#: and the simulator put one picture in a PES packet.
STREAMS: dict[str, Callable[[], bytes]] = {
    "mpeg": lambda: ffmpeg_stream("mpeg", False),
    "vob-open": lambda: ffmpeg_stream("vob", True),
    "mpeg-small": lambda: ffmpeg_stream("mpeg", False, 40, (160, 120)),
    "vob-small-open": lambda: ffmpeg_stream("vob", True, 40, (160, 120)),
    "mpegts-small-open": lambda: ffmpeg_stream("mpegts", True, 40, (160, 120)),
    "sim-es": lambda: sim_stream("es", False),
    "sim-ps": lambda: sim_stream("ps", True),
    "sim-ts": lambda: sim_stream("ts", False),
}


@functools.cache
def camera_frames(name: str) -> tuple[tuple[Frame, ...], int]:
    """Return a stream's frames as the ingest makes them (25 fps arrivals), and its pictures."""
    units = units_of(feed(STREAMS[name](), "all")[0])
    stamper = PtsStamper()
    frames = []
    for seq, unit in enumerate(units):
        data = mpeg2_frame_data(unit)
        assert data is not None
        arrival = 10**9 + seq * 40_000_000
        pts = stamper.stamp(unit, arrival, new_connection=seq == 0)
        frame = Frame(
            data.payload,
            data.content_type,
            seq,
            pts,
            received_ns=arrival,
            cut=data.cut,
            leading=data.leading,
            continued=data.continued,
        )
        frames.append(frame)
    return tuple(frames), sum(u.pictures for u in units)


def pictures_of(source: Mpeg2Pictures, frames: tuple[Frame, ...]) -> list[SourcePicture]:
    """Return every picture the frames give."""
    return [picture for frame in frames for picture in source.pictures(frame)]


@pytest.mark.parametrize("name", STREAMS)
def test_every_picture_is_encoded_once_at_its_display_time(name: str) -> None:
    frames, count = camera_frames(name)
    source = Mpeg2Pictures()
    pipeline = H264Pipeline(H264Settings(), source=StreamKind.MPEG2)
    out = []
    for picture in pictures_of(source, frames):
        out += pipeline.encode(picture.data, picture.pts)
    out += pipeline.flush()
    assert len(decode_h264(out)) == len(out) == count
    counters = pipeline.counters
    assert (counters.failed, counters.skipped_pts, counters.frames_in) == (0, 0, count)
    steps = [b - a for a, b in itertools.pairwise(unit.pts for unit in out)]
    if not name.startswith("sim"):  # FFmpeg's PES PTS: every picture, 1/25 s apart
        assert steps == [PERIOD] * (count - 1)
    elif name != "sim-es":  # the simulator's PES PTS: its last B-pictures are not out yet
        assert {step % PERIOD for step in steps} == {0}
    assert min(steps) > 0  # an elementary stream: times from arrival (ingest.mpeg2_clock)
    assert (source.joins, source.skipped, source.leading_skipped) == (1, 0, 0)


def expected_after_join(frames: tuple[Frame, ...], k: int) -> list[bytes]:
    """Return the pictures from cut k's I-picture on, less its open GOP's leading ones."""
    reader = PictureReader(CONTAINERS[frames[0].content_type])
    pictures = [p for f in frames for p in reader.feed(f.payload, continued=f.continued)]
    first = next(i for i, p in enumerate(pictures) if p.unit == k and p.gop)
    cut = frames[k].cut
    lead = None if cut is None or cut.closed_gop else pictures[first]
    out = [pictures[first].data]
    for picture in pictures[first + 1 :]:
        lead = None if picture.gop else lead
        leading = lead is not None and picture.temporal_reference < lead.temporal_reference
        if not (leading and picture.picture_type is PictureType.B):
            out.append(picture.data)
    return out


@pytest.mark.parametrize("name", ["vob-open", "vob-small-open", "mpeg-small", "sim-ts"])
def test_a_join_at_any_cut_point_gives_every_picture_from_there(name: str) -> None:
    frames, _ = camera_frames(name)
    cuts = [k for k, frame in enumerate(frames) if frame.cut is not None]
    assert len(cuts) >= 3
    leading = 0
    for k in cuts[1:]:
        source = Mpeg2Pictures()
        start = k if frames[k - 1].cut else k - 1  # a frame before the cut: skipped
        joined = pictures_of(source, frames[start:])
        assert (source.skipped, source.joins) == (k - start, 1)
        expected = expected_after_join(frames, k)
        # The join's first picture carries what the stream did not repeat (sequence
        # header, broken_link set): it ends like the camera's.
        assert bytes(joined[0].data).endswith(expected[0][-64:])
        assert [p.data for p in joined[1:]] == expected[1:]
        assert len({p.pts for p in joined}) == len(joined)
        leading += source.leading_skipped
    assert (leading > 0) == name.endswith("open")


def test_pictures_split_across_frames_arrive_with_the_frame_that_ends_them() -> None:
    frames, _ = camera_frames("mpeg")
    assert frames[0].continued
    source = Mpeg2Pictures()
    assert source.pictures(frames[0]) == []
    (first,) = source.pictures(frames[1])
    assert (first.pts, first.received_ns) == (frames[0].pts, frames[1].received_ns)


def test_a_reset_or_new_connection_waits_for_the_next_cut_point() -> None:
    frames, _ = camera_frames("sim-ps")
    cuts = [k for k, frame in enumerate(frames) if frame.cut is not None]
    source = Mpeg2Pictures()
    pictures_of(source, frames[: cuts[1] - 3])
    assert source.pictures(frames[cuts[1] - 3], reset=True) == []
    assert source.pictures(dataclasses.replace(frames[cuts[1] - 2], seq=0)) == []
    assert source.skipped == 2
    assert len(source.pictures(frames[cuts[1] - 1])) == 0  # still waiting
    assert len(source.pictures(frames[cuts[1]])) == 1
    assert source.joins == 2
    assert source.stats() == {
        "joins": 2,
        "units_skipped": 3,
        "leading_skipped": 0,
        "pictures": 1,
    }


def test_bad_input_raises_and_the_next_cut_point_starts_again() -> None:
    frames, _ = camera_frames("sim-ts")
    source = Mpeg2Pictures()
    pictures_of(source, frames[:3])
    broken = dataclasses.replace(frames[3], payload=bytes(frames[3].payload)[:188] + b"junk" * 47)
    with pytest.raises(RemoteProtocolError, match="transport stream unit: no packet"):
        source.pictures(broken)
    next_cut = next(k for k in range(4, len(frames)) if frames[k].cut is not None)
    assert pictures_of(source, frames[4:next_cut]) == []
    assert len(source.pictures(frames[next_cut])) == 1


def test_frames_must_be_mpeg2() -> None:
    frames, _ = camera_frames("sim-es")
    jpeg = dataclasses.replace(frames[0], content_type="image/jpeg")
    with pytest.raises(RemoteProtocolError, match="not an MPEG-2 frame: 'image/jpeg'"):
        Mpeg2Pictures().pictures(jpeg)


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("sim-es", "video/mpeg"), ("sim-ps", "video/mp2p"), ("sim-ts", "video/mp2t")],
)
def test_frames_say_their_container(name: str, media_type: str) -> None:
    frames, _ = camera_frames(name)
    assert {frame.content_type for frame in frames} == {media_type}
