"""H264Pipeline on MPEG-2 input: reordering, stamps, frame count."""

from __future__ import annotations

from gateway.media import StreamKind
from gateway.sim.mpeg2 import Mpeg2Producer
from gateway.transcode.h264 import H264Pipeline
from gateway.transcode.h264_params import H264Settings

from .h264_helpers import decode_h264, mpeg2_pictures

#: Pictures per test stream.
COUNT = 30


def mpeg2_pipeline(**settings: object) -> H264Pipeline:
    """Return a pipeline for MPEG-2 input."""
    return H264Pipeline(H264Settings(**settings), source=StreamKind.MPEG2)  # type: ignore[arg-type]


def encode_all(pipeline: H264Pipeline, pictures: list[tuple[bytes, int]]) -> list[int]:
    """Feed (picture, pts) pairs, flush, and return the output pts."""
    out = []
    for data, pts in pictures:
        out += pipeline.encode(data, pts)
    out += pipeline.flush()
    assert len(decode_h264(out)) == len(out)
    return [unit.pts for unit in out]


def test_pes_pts_come_out_in_display_order() -> None:
    pictures = mpeg2_pictures(COUNT)
    decode_order = [pts for _, pts in pictures]
    assert decode_order != sorted(decode_order)  # the stream has B-pictures
    encode = mpeg2_pipeline()
    assert encode_all(encode, pictures) == sorted(decode_order)
    assert encode.counters.frames_out == COUNT
    assert encode.counters.failed == 0


def test_arrival_stamps_in_decode_order_stay_monotonic() -> None:
    # Without PES PTS (an elementary stream) the caller stamps pictures as they arrive.
    pictures = mpeg2_pictures(COUNT)
    arrival = [(data, 1000 + 3600 * i) for i, (data, _) in enumerate(pictures)]
    assert encode_all(mpeg2_pipeline(), arrival) == [pts for _, pts in arrival]


def test_stream_without_b_pictures() -> None:
    pictures = mpeg2_pictures(COUNT, b_frames=0)
    assert encode_all(mpeg2_pipeline(), pictures) == [pts for _, pts in pictures]


def test_joining_mid_gop_skips_pictures_until_a_sequence_header() -> None:
    pictures = mpeg2_pictures(COUNT)
    # Start at the third picture: no sequence header until the next GOP (12 pictures).
    encode = mpeg2_pipeline()
    pts = encode_all(encode, pictures[2:])
    assert pts == sorted(pts)
    assert 0 < len(pts) < COUNT - 2
    assert encode.counters.failed == COUNT - 2 - len(pts)


def test_simulator_stream_encodes_every_picture() -> None:
    producer = Mpeg2Producer(1, 160, 120, 25)
    chunks = [
        chunk for frame in range(COUNT) for chunk in producer.produce(frame, frame * 40_000_000)
    ]
    encode = mpeg2_pipeline(keyframe_seconds=0.5)
    pts = encode_all(encode, [(chunk.data, 3600 * i) for i, chunk in enumerate(chunks)])
    # The producer's encoder still holds its last pictures (no flush): all it released.
    assert len(pts) == len(chunks) >= COUNT - 3
    assert encode.counters.keyframes_periodic == 1 + (pts[-1] - pts[0]) // 45_000


def test_two_pictures_in_one_input_keep_the_stream_going() -> None:
    # The demuxer merges pictures that start in one PES packet into one unit.
    pictures = mpeg2_pictures(12, b_frames=0)
    merged = (pictures[4][0] + pictures[5][0], pictures[4][1])
    pts = encode_all(mpeg2_pipeline(), [*pictures[:4], merged, *pictures[6:]])
    assert pts == sorted(pts)
    assert len(pts) >= 10
