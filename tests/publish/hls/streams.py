"""Camera-like frame streams for the LL-HLS tests: timing only, or really encoded.

``synthetic`` frames carry a fake picture (fast: thousands per test); ``encoded`` ones
are libx264 output with IDRs where the shared encode would put them (``keyframes``:
its ``keyframe_seconds`` grid, re-anchored after a gap), in the MP4 sample form.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import pairwise

import av
import numpy as np
from av.video.frame import PictureType

from gateway.media import CutPoint, Frame
from gateway.mux import h264
from gateway.mux.progressive import AudioFormat
from gateway.mux.tracks import AudioCodec
from gateway.publish.hls.parts import Event, PartCompleted, SegmentCompleted
from gateway.publish.hls.segmenter import Segmenter
from tests.mux.encoded import encode_audio
from tests.mux.samples import AVCC_HIGH, PPS_BASELINE, SPS_BASELINE

HZ = 90_000
RATE = 48_000
#: Where the camera's clock stands at the first frame (pts are not 0-based).
EPOCH = 123_456
SIZE = (160, 120)
#: ns since the Unix epoch of monotonic 0 in these tests (2025-01-01T00:00:00Z).
WALL_OFFSET_NS = 1_735_689_600 * 10**9


def regular(fps: float, seconds: float) -> list[int]:
    """Return the pts (90 kHz, from 0) of a camera at ``fps`` for ``seconds``."""
    step = HZ / fps
    return [round(i * step) for i in range(round(seconds * fps))]


def jittered(fps: float, seconds: float, jitter: float = 0.2, seed: int = 7) -> list[int]:
    """Return pts ``jitter`` of an interval off the ``fps`` grid (uniform), increasing."""
    rng = random.Random(seed)
    step = HZ / fps
    stamps = [0]
    for index in range(1, round(seconds * fps)):
        stamps.append(round(index * step + rng.uniform(-jitter, jitter) * step))
    assert all(b > a for a, b in pairwise(stamps))
    return stamps


def keyframes(pts: Sequence[int], seconds: float = 1.0) -> set[int]:
    """Return the indexes the shared encode makes IDRs: first, then on a grid of ``seconds``.

    As ``gateway.transcode.h264``: the first picture at or after each due time; after a
    gap longer than one interval the grid restarts there.
    """
    ticks = round(seconds * HZ)
    due: int | None = None
    out = set()
    for index, stamp in enumerate(pts):
        if due is None or stamp >= due:
            out.add(index)
            due = due + ticks if due is not None and due + ticks > stamp else stamp + ticks
    return out


def synthetic(
    pts: Sequence[int],
    keys: Iterable[int] | None = None,
    *,
    avcc: bytes = AVCC_HIGH,
    size: tuple[int, int] = SIZE,
) -> list[Frame]:
    """Return frames at ``pts`` (+EPOCH) with IDRs at ``keys`` (default: the encode's grid)."""
    keyset = keyframes(pts) if keys is None else set(keys)
    frames = []
    for index, stamp in enumerate(pts):
        key = index in keyset
        body = bytes([0x65 if key else 0x41]) + index.to_bytes(4, "big")
        frames.append(
            Frame(
                payload=b"\0\0\0\1" + body,
                content_type="video/h264",
                seq=index,
                pts=EPOCH + stamp,
                received_ns=(EPOCH + stamp) * 100_000 // 9,
                cut=CutPoint(config=avcc) if key else None,
                sample=len(body).to_bytes(4, "big") + body,
                dimensions=size,
            )
        )
    return frames


def encoded(pts: Sequence[int], keys: Iterable[int] | None = None) -> list[Frame]:
    """Encode a moving picture at ``pts`` with libx264, IDRs at ``keys``, as the encode does."""
    keyset = keyframes(pts) if keys is None else set(keys)
    ctx = av.CodecContext.create("libx264", "w")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.width, ctx.height = SIZE
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, HZ)
    ctx.framerate = Fraction(25)
    ctx.options = {
        "tune": "zerolatency",
        "forced-idr": "1",
        "x264-params": "keyint=infinite:scenecut=0:repeat-headers=1:bframes=0",
    }
    ctx.open()
    packets = []
    for index, stamp in enumerate(pts):
        pixels = np.full((SIZE[1], SIZE[0], 3), (index * 7) % 256, np.uint8)
        pixels[:, (index * 3) % SIZE[0]] = 255
        picture = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
        picture.pts = stamp
        picture.pict_type = PictureType.I if index in keyset else PictureType.NONE
        packets += ctx.encode(picture)
    packets += ctx.encode(None)
    frames = []
    for index, packet in enumerate(packets):
        data = bytes(packet)
        assert packet.pts is not None
        assert packet.is_keyframe == (index in keyset)
        cut = None
        if packet.is_keyframe:
            units = h264.split_annexb(data)
            cut = CutPoint(config=h264.avcc_from_parameter_sets(*h264.parameter_sets(units)))
        frames.append(
            Frame(
                payload=data,
                content_type="video/h264",
                seq=index,
                pts=EPOCH + packet.pts,
                received_ns=(EPOCH + packet.pts) * 100_000 // 9,
                cut=cut,
                sample=h264.annexb_to_sample(data),
                dimensions=SIZE,
            )
        )
    assert [f.pts - EPOCH for f in frames] == list(pts)
    return frames


def aac(first: int, last: int) -> tuple[AudioFormat, list[Frame]]:
    """Return AAC frames covering 90 kHz times ``first``..``last`` (+EPOCH) on the video clock."""
    start = (EPOCH + first) * RATE // HZ
    count = (last - first) * RATE // HZ // 1024 + 1
    asc, frames = encode_audio(start, count)
    return AudioFormat(AudioCodec.AAC, RATE, 1, asc), frames


@dataclass
class Fed:
    """What a segmenter returned while a stream was fed to it."""

    events: list[Event] = field(default_factory=list)

    @property
    def parts(self) -> list[PartCompleted]:
        """Return the PartCompleted events."""
        return [e for e in self.events if isinstance(e, PartCompleted)]

    @property
    def segments(self) -> list[SegmentCompleted]:
        """Return the SegmentCompleted events."""
        return [e for e in self.events if isinstance(e, SegmentCompleted)]


def feed(
    segmenter: Segmenter,
    video: Sequence[Frame],
    audio: Sequence[Frame] = (),
    *,
    audio_lag_ns: int = 100_000_000,
) -> Fed:
    """Feed frames in arrival order (audio ``audio_lag_ns`` after its time); ``now`` = arrival."""
    arrivals = [(f.received_ns, 1, i, f) for i, f in enumerate(video)]
    arrivals += [(f.received_ns + audio_lag_ns, 0, i, f) for i, f in enumerate(audio)]
    fed = Fed()
    for now, is_video, _, frame in sorted(arrivals, key=lambda a: a[:3]):
        if is_video:
            fed.events += segmenter.push_video(frame, now)
        else:
            fed.events += segmenter.push_audio(frame, now)
    return fed


def segmenter(
    *,
    audio: AudioFormat | None = None,
    part_target: float = 0.2,
    segment_target: float = 1.0,
    window: float | None = None,
    max_segments: int = 256,
) -> Segmenter:
    """Return a segmenter with the test wall clock and the defaults of ``[hls]``."""
    return Segmenter(
        part_target=part_target,
        segment_target=segment_target,
        audio=audio,
        wall_offset_ns=WALL_OFFSET_NS,
        window=window,
        max_segments=max_segments,
    )


#: Another avcC (Baseline parameter sets) for format changes.
OTHER_AVCC = h264.avcc_from_parameter_sets(SPS_BASELINE, PPS_BASELINE)
