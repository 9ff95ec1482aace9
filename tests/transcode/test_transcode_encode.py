"""The shared encode as camera renditions (DESIGN §6 "Encode once"), in memory.

A ``CameraMedia`` built with the app's ``rendition_specs`` is fed simulator JPEGs (and
G.726 parts) through ``on_frame`` as the ingest would; the H.264 and AAC rings are read
through cursors and decoded with PyAV. The registry's linger runs on a fake clock;
frames are fed one at a time and the worker awaited, so no test depends on timing.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
import pytest

from gateway.config import CameraConfig, VideoSource
from gateway.errors import LocalProtocolError
from gateway.hub import CameraMedia, Cursor, RenditionHandle
from gateway.media import CutPoint, Frame, StreamKind
from gateway.sim.encoders import AUDIO_PART_SAMPLES, AudioCodec, JpegProducer, ToneProducer
from gateway.sim.pattern import read_block_code
from gateway.transcode import AudioEncoding, rendition_specs
from gateway.transcode import audio_rendition as audio_module
from gateway.transcode.audio_rendition import AudioRendition, audio_key
from gateway.transcode.encode import (
    H264_KIND,
    MIN_KEYFRAME_INTERVAL,
    H264Rendition,
    KeyframeGate,
    h264_key,
)
from tests.transcode.h264_helpers import (
    HZ,
    decode_h264,
    jittered,
    mpeg2_pictures,
    nal_types,
    stamps,
)

#: What the pipeline reports for an IDR access unit (ITU-T H.264 Table 7-1).
NAL_IDR, NAL_SPS, NAL_PPS = 5, 7, 8
#: Encode linger of the harness, seconds (the registry's fake clock).
LINGER = 5.0
CAMERA = CameraConfig(name="cam", index=1, source="sim", mjpeg=True, fps=25)
AUDIO_CAMERA = CameraConfig(name="cam", index=1, source="sim", mjpeg=True, audio=True)
#: The simulator's tone on channel 1 (gateway/sim/state.py).
TONE_HZ = 1000.0
#: Output rate of the AAC encode, and its samples per input sample.
AAC_RATE = 48_000
RATIO = AAC_RATE // 8000


class FakeClock:
    """Seconds, moved by hand (the registry's linger clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Jpegs:
    """Simulator pictures (block code and COM segment included), made once per size."""

    size: tuple[int, int]
    cache: list[bytes] = field(default_factory=list)

    def __getitem__(self, index: int) -> bytes:
        if len(self.cache) <= index:
            producer = JpegProducer(1, *self.size)
            count = max(index + 1, 40)
            self.cache = [producer.produce(i, i * 40_000_000)[0].data for i in range(count)]
        return self.cache[index]


@pytest.fixture(scope="module")
def small() -> Jpegs:
    return Jpegs((320, 240))


@pytest.fixture(scope="module")
def large() -> Jpegs:
    return Jpegs((640, 480))


class Harness:
    """One camera's media with the app's rendition table, fed by hand."""

    def __init__(self, camera: CameraConfig = CAMERA) -> None:
        self.clock = FakeClock()
        self.media = CameraMedia(
            camera,
            loop=asyncio.get_running_loop(),
            specs=rendition_specs(encode_linger=LINGER),
            clock=self.clock,
        )
        self.renditions = self.media.renditions
        self._seq = 0

    def push(self, payload: bytes, pts: int) -> None:
        """Hand one JPEG to the camera's media, as the MJPEG ingest does."""
        self.media.on_frame(StreamKind.MJPEG)(
            Frame(
                payload=payload,
                content_type="image/jpeg",
                seq=self._seq,
                pts=pts,
                received_ns=pts * 100_000 // 9,  # the same instant in ns
            )
        )
        self._seq += 1

    async def encode(self, encodes: Sequence[H264Rendition], payload: bytes, pts: int) -> None:
        """Push one picture and wait until every encode has published what it made."""
        self.push(payload, pts)
        async with asyncio.timeout(10):
            for rendition in encodes:
                await rendition.worker.wait_idle()


def take(cursor: Cursor) -> list[Frame]:
    """Return the frames pending for ``cursor``."""
    return [d.frame for d in cursor.take_frames(10_000)]


def is_idr(frame: Frame) -> bool:
    """Return True for an IDR access unit carrying its SPS and PPS (and an avcC)."""
    types = nal_types(bytes(frame.payload))
    idr = NAL_IDR in types
    if idr:
        assert NAL_SPS in types
        assert NAL_PPS in types
        assert frame.cut is not None
        assert frame.cut.config is not None
    assert idr == (frame.cut is not None)
    return idr


def decode(frames: Sequence[Frame]) -> list[av.VideoFrame]:
    """Decode the frames' Annex B payloads strictly (any bitstream error raises)."""
    return decode_h264([bytes(f.payload) for f in frames])


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    await h.media.aclose()


# -- keyframes on request ---------------------------------------------------------------


async def test_idr_on_request_is_the_next_picture(harness: Harness, small: Jpegs) -> None:
    handle = harness.renditions.acquire(h264_key())
    encode = handle.rendition
    assert encode.gate.min_interval == MIN_KEYFRAME_INTERVAL
    # The gate reads the loop's clock: a wide interval keeps a slow machine's encode
    # between the two requests from mattering (the interval itself is tested below).
    encode.gate.min_interval = 60.0
    cursor = encode.ring.subscribe()
    pts = stamps(25, 40)
    for i in range(10):
        await harness.encode([encode], small[i], pts[i])
    start = take(cursor)
    assert [is_idr(f) for f in start] == [True] + [False] * 9

    cursor.request_keyframe()  # what a joining viewer does
    await harness.encode([encode], small[10], pts[10])
    (forced,) = take(cursor)
    assert is_idr(forced)
    assert forced.pts == pts[10]

    # A second request within the interval is refused, and counted.
    cursor.request_keyframe()
    await harness.encode([encode], small[11], pts[11])
    assert not is_idr(take(cursor)[0])
    stats = encode.stats()
    assert stats["keyframes_requested"] == 2
    assert stats["keyframes_rate_limited"] == 1
    assert stats["keyframes_forced"] == 1
    assert encode.ring.keyframe_requests == 2
    cursor.close()


async def test_request_is_free_while_a_keyframe_is_due(harness: Harness, small: Jpegs) -> None:
    handle = harness.renditions.acquire(h264_key())
    encode = handle.rendition
    cursor = encode.ring.subscribe()
    pts = stamps(25, 30)  # keyframe_seconds = 1: the second IDR is due at pts[25]
    for i in range(25):
        await harness.encode([encode], small[i], pts[i])
    taken = take(cursor)
    assert sum(is_idr(f) for f in taken) == 1
    # The next picture is an IDR anyway: the request costs nothing and is not counted
    # against the rate limit.
    encode.request_keyframe()
    assert encode.gate.due_anyway == 1
    assert encode.gate.granted == 0
    await harness.encode([encode], small[25], pts[25])
    (periodic,) = take(cursor)
    assert is_idr(periodic)
    assert encode.stats()["keyframes_forced"] == 0
    # ... and a real request right after still goes through.
    encode.request_keyframe()
    assert encode.gate.granted == 1
    await harness.encode([encode], small[26], pts[26])
    assert is_idr(take(cursor)[0])
    cursor.close()


def test_keyframe_gate_rate_limit() -> None:
    assert MIN_KEYFRAME_INTERVAL == 0.5  # issue 8: one requested IDR per 0.5 s
    gate = KeyframeGate()
    assert gate.request(10.0)
    assert not gate.request(10.49)
    assert not gate.request(10.2, due=True)
    assert gate.request(10.5)
    assert (gate.requested, gate.granted, gate.limited, gate.due_anyway) == (4, 2, 1, 1)


async def test_pictures_decode_in_order(harness: Harness, small: Jpegs) -> None:
    handle = harness.renditions.acquire(h264_key())
    encode = handle.rendition
    cursor = encode.ring.subscribe()
    pts = stamps(25, 12)
    for i in range(12):
        if i in (4, 9):
            cursor.request_keyframe()
        await harness.encode([encode], small[i], pts[i])
    frames = take(cursor)
    decoded = decode(frames)
    assert len(decoded) == 12
    codes = [read_block_code(picture.to_ndarray(format="gray")) for picture in decoded]
    assert [None if c is None else c[0] for c in codes] == list(range(12))
    assert [f.dimensions for f in frames] == [(320, 240)] * 12
    cursor.close()


# -- sharing, linger, feeding -----------------------------------------------------------


async def test_one_encoder_per_size(harness: Harness, large: Jpegs) -> None:
    first = harness.renditions.acquire(h264_key())
    second = harness.renditions.acquire(h264_key())
    assert first.rendition is second.rendition
    small_handle = harness.renditions.acquire(h264_key((320, 240)))
    assert small_handle.rendition is not first.rendition
    assert harness.renditions.started[H264_KIND] == 2
    entries = harness.renditions.stats(H264_KIND)
    assert sorted((str(e["params"]), e["claims"]) for e in entries) == [
        ("(320, 240)", 1),
        ("None", 2),
    ]
    full, capped = first.rendition, small_handle.rendition
    full_cursor, capped_cursor = full.ring.subscribe(), capped.ring.subscribe()
    pts = stamps(25, 3)
    for i in range(3):
        await harness.encode([full, capped], large[i], pts[i])
    full_frames, capped_frames = take(full_cursor), take(capped_cursor)
    assert {f.dimensions for f in full_frames} == {(640, 480)}
    assert {f.dimensions for f in capped_frames} == {(320, 240)}
    assert [p.width for p in decode(capped_frames)] == [320] * 3
    assert [p.width for p in decode(full_frames)] == [640] * 3
    assert [f.pts for f in full_frames] == [f.pts for f in capped_frames] == pts
    full_cursor.close()
    capped_cursor.close()


async def test_linger_then_stop_and_restart(harness: Harness, small: Jpegs) -> None:
    renditions, clock = harness.renditions, harness.clock
    handle = renditions.acquire(h264_key())
    encode = handle.rendition
    cursor = encode.ring.subscribe()
    await harness.encode([encode], small[0], 10_000)
    cursor.close()
    handle.release()
    (entry,) = renditions.stats(H264_KIND)
    assert entry["state"] == "lingering"
    assert renditions.get_timer() == clock.now + LINGER

    # A viewer coming back within the linger gets the same encoder.
    again = renditions.acquire(h264_key())
    assert again.rendition is encode
    again.release()

    clock.now += LINGER - 0.01
    renditions.handle_timer(clock.now)
    assert renditions.get(h264_key()) is encode
    clock.now += 0.01
    renditions.handle_timer(clock.now)
    assert renditions.get(h264_key()) is None
    assert renditions.stopped[H264_KIND] == 1
    assert encode.ring.closed
    assert encode.worker.closed
    await encode.wait_stopped()
    # The stopped encode's codec contexts are freed at once, not by a later cyclic GC.
    assert encode.pipeline._encoder is None
    assert encode.pipeline._decoder is None

    # The next viewer starts a fresh encoder, whose first picture is an IDR.
    fresh = renditions.acquire(h264_key())
    assert fresh.rendition is not encode
    assert renditions.started[H264_KIND] == 2
    cursor = fresh.rendition.ring.subscribe()
    await harness.encode([fresh.rendition], small[1], 13_600)
    (first,) = take(cursor)
    assert is_idr(first)
    cursor.close()


async def test_encoder_fed_only_while_its_ring_has_readers(harness: Harness, small: Jpegs) -> None:
    handle = harness.renditions.acquire(h264_key())
    encode = handle.rendition
    pts = stamps(25, 6)
    for i in range(3):
        harness.push(small[i], pts[i])
    assert encode.worker.counters.items_in == 0
    assert encode.ring.frames_published == 0
    assert encode.upstream_fps() is None  # nothing asked of the camera either
    cursor = encode.ring.subscribe()
    assert encode.upstream_fps() == (StreamKind.MJPEG, None)
    for i in range(3, 6):
        await harness.encode([encode], small[i], pts[i])
    assert [f.pts for f in take(cursor)] == pts[3:]
    cursor.close()
    harness.push(small[0], pts[-1] + 3600)
    assert encode.worker.counters.items_in == 3


# -- overload and bad input --------------------------------------------------------------


async def test_busy_encoder_skips_to_the_newest_picture(harness: Harness, small: Jpegs) -> None:
    handle = harness.renditions.acquire(h264_key())
    encode = handle.rendition
    cursor = encode.ring.subscribe()
    pts = stamps(25, 8)
    # A burst while the worker is busy: the first picture is taken, each later one
    # replaces the one waiting (latest-wins), and the newest is encoded next.
    for i in range(8):
        harness.push(small[i], pts[i])
    async with asyncio.timeout(10):
        await encode.worker.wait_idle()
    frames = take(cursor)
    assert [f.pts for f in frames] == [pts[0], pts[7]]
    assert encode.stats()["skipped"] == 6
    assert len(decode(frames)) == 2
    # The encode goes on.
    await harness.encode([encode], small[0], pts[7] + 3600)
    assert len(take(cursor)) == 1
    cursor.close()


def _broken(jpeg: bytes) -> list[bytes]:
    """Return JPEGs that must not reach the encoder, each for its own reason."""
    return [
        b"not a jpeg at all",
        jpeg[: len(jpeg) // 2],  # cut short: no EOI
        b"\xff\xd8" + bytes(range(256)) * 4 + b"\xff\xd9",  # no SOF
    ]


async def test_undecodable_pictures_are_skipped_and_counted(harness: Harness, small: Jpegs) -> None:
    handle = harness.renditions.acquire(h264_key())
    encode = handle.rendition
    cursor = encode.ring.subscribe()
    pts = stamps(25, 12)
    broken = _broken(small[0])
    fed = []
    for i in range(12):
        payload = broken[(i - 3) // 3] if i in (3, 6, 9) else small[i]
        fed.append(payload)
        await harness.encode([encode], payload, pts[i])
    frames = take(cursor)
    good = [pts[i] for i in range(12) if i not in (3, 6, 9)]
    assert [f.pts for f in frames] == good
    stats = encode.stats()
    assert stats["failed"] == 3
    assert stats["last_error"]
    assert len(decode(frames)) == 9
    cursor.close()


# -- timestamps -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: stamps(12.5, 16), id="12.5fps"),
        pytest.param(lambda: stamps(25, 16), id="25fps"),
        pytest.param(lambda: stamps(30, 16), id="30fps"),
        pytest.param(lambda: jittered(25, 16, jitter=0.2), id="25fps-jitter20"),
        pytest.param(lambda: jittered(12.5, 16, jitter=0.2, seed=11), id="12.5fps-jitter20"),
    ],
)
async def test_output_pts_are_the_cameras(
    harness: Harness, small: Jpegs, make: Callable[[], list[int]]
) -> None:
    pts = make()
    handle = harness.renditions.acquire(h264_key())
    encode = handle.rendition
    cursor = encode.ring.subscribe()
    for i, stamp in enumerate(pts):
        await harness.encode([encode], small[i], stamp)
    frames = take(cursor)
    assert [f.pts for f in frames] == pts
    assert [f.received_ns for f in frames] == [p * 100_000 // 9 for p in pts]
    # Played at its own pace: as many seconds of video as the camera sent.
    span = Fraction(frames[-1].pts - frames[0].pts, HZ)
    assert span == Fraction(pts[-1] - pts[0], HZ)
    cursor.close()


# -- audio ------------------------------------------------------------------------------


class AudioFeed:
    """G.726 parts of the simulator's tone, stamped as the audio ingest stamps them."""

    def __init__(self, media: CameraMedia) -> None:
        self.on_frame = media.on_frame(StreamKind.AUDIO)
        self.tone = ToneProducer(AudioCodec.G726, TONE_HZ)
        self.seq = 0

    def part(self, received_ns: int) -> Frame:
        """Return the next part, arrived at ``received_ns`` (pts: that instant at 8 kHz)."""
        (chunk,) = self.tone.produce(self.seq, 0)
        frame = Frame(
            payload=chunk.data,
            content_type="audio/32KADPCM",
            seq=self.seq,
            pts=received_ns * 8000 // 1_000_000_000,
            time_base=Fraction(1, 8000),
            received_ns=received_ns,
        )
        self.seq += 1
        return frame

    async def send(self, rendition: AudioRendition, count: int, start_ns: int) -> int:
        """Send ``count`` parts 64 ms apart from ``start_ns``; return the next part's time.

        Parts go in batches the decoder's queue holds (16), as a camera's would arrive.
        """
        step = AUDIO_PART_SAMPLES * 1_000_000_000 // 8000
        for i in range(count):
            self.on_frame(self.part(start_ns + i * step))
            if i % 8 == 7:
                await settle(rendition)
        await settle(rendition)
        return start_ns + count * step


async def settle(rendition: AudioRendition) -> None:
    """Wait until the PCM decoder and the encoder hold nothing."""
    pcm = rendition._pcm.rendition  # the shared decoder this encode listens to
    async with asyncio.timeout(10):
        for _ in range(3):
            await pcm.decoder.wait_idle()
            await rendition.worker.wait_idle()


def continuous(packets: Sequence[Frame]) -> bool:
    """Return True if every packet starts where the previous one ended."""
    return all(b.pts == a.pts + a.duration for a, b in itertools.pairwise(packets))


def dominant_hz(packets: Sequence[Frame], config: bytes) -> float:
    """Decode AAC packets and return the strongest frequency (after the first 0.2 s)."""
    ctx = av.CodecContext.create("aac", "r")
    assert isinstance(ctx, av.AudioCodecContext)
    ctx.extradata = config
    chunks = []
    for packet in packets:
        for decoded in ctx.decode(av.Packet(bytes(packet.payload))):
            chunks.append(decoded.to_ndarray().reshape(-1))
    samples = np.concatenate(chunks).astype(np.float64)[AAC_RATE // 5 :]
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / AAC_RATE)[int(np.argmax(spectrum))])


class FakeTime:
    """Stands in for the ``time`` module in audio_rendition: its silence clock."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def monotonic_ns(self) -> int:
        return self.now_ns


def assert_in_step(packets: Sequence[Frame], now_ns: int) -> None:
    """Assert that the packets reach ``now_ns`` on the ingest clock (priming included).

    The encoder may still hold up to two frames and a partial one; a silence fill may
    end up to a frame late (it pads to where packets start).
    """
    expected = now_ns * 8000 // 1_000_000_000 * RATIO - 1024
    end = packets[-1].pts + packets[-1].duration
    assert expected - 3 * 1024 <= end <= expected + 1024


@pytest.fixture
async def audio(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Harness, FakeTime]]:
    # The silence check runs on the real loop clock: push it out of the test's way and
    # drive it by hand, on a fake clock.
    monkeypatch.setattr(audio_module, "SILENCE_CHECK", 3600.0)
    fake = FakeTime(50 * 1_000_000_000)
    monkeypatch.setattr(audio_module, "time", fake)
    h = Harness(AUDIO_CAMERA)
    yield h, fake
    await h.media.aclose()


def aac(h: Harness) -> tuple[RenditionHandle[AudioRendition], Cursor]:
    handle = h.renditions.acquire(audio_key(AudioEncoding.AAC))
    return handle, handle.rendition.ring.subscribe()


async def test_aac_packets_are_continuous_and_carry_the_tone(
    audio: tuple[Harness, FakeTime],
) -> None:
    h, fake = audio
    handle, cursor = aac(h)
    encode = handle.rendition
    feed = AudioFeed(h.media)
    start_ns = fake.now_ns
    fake.now_ns = await feed.send(encode, 32, start_ns)  # 2 s
    await settle(encode)
    packets = take(cursor)
    assert continuous(packets)
    assert all(p.duration == 1024 and p.cut is not None for p in packets)
    # The first packet starts the encoder's priming (1024 samples) before the first part.
    first_input = start_ns * 8000 // 1_000_000_000
    assert packets[0].pts == first_input * RATIO - 1024
    # All but what the encoder still holds (at most two frames and a partial one).
    fed = 32 * AUDIO_PART_SAMPLES * RATIO
    assert fed - 3 * 1024 <= packets[-1].pts + 1024 - packets[0].pts - 1024 <= fed
    assert abs(dominant_hz(packets, encode.pipeline.config.extradata) - TONE_HZ) < 5
    assert encode.silence_fills == 0
    cursor.close()


def resampler(encode: AudioRendition) -> object:
    """Return the encode's resampler (None: freed, or not opened yet)."""
    return encode.pipeline._resampler


async def test_a_stopped_aac_encode_frees_its_encoder_and_resampler(
    audio: tuple[Harness, FakeTime],
) -> None:
    h, fake = audio
    handle, cursor = aac(h)
    encode = handle.rendition
    fake.now_ns = await AudioFeed(h.media).send(encode, 4, fake.now_ns)
    await settle(encode)
    assert resampler(encode) is not None
    cursor.close()
    handle.release()
    h.clock.now += LINGER
    h.renditions.handle_timer(h.clock.now)
    await encode.wait_stopped()
    # Its filter graphs' threads end now, not when the garbage collector finds it.
    assert resampler(encode) is None
    with pytest.raises(LocalProtocolError, match="aac pipeline is flushed or closed"):
        encode.pipeline.fill_until(10**9)


async def test_aac_dropouts_are_filled_with_silence(audio: tuple[Harness, FakeTime]) -> None:
    h, fake = audio
    handle, cursor = aac(h)
    encode = handle.rendition
    feed = AudioFeed(h.media)
    second = 1_000_000_000
    start_ns = fake.now_ns
    first_input = start_ns * 8000 // second
    # One second of audio, two without, one with (the same connection: the part
    # numbers go on), two without again.
    end = await feed.send(encode, 16, start_ns)
    packets = take(cursor)
    fake.now_ns = end + 2 * second
    encode._check_silence()
    await settle(encode)
    packets += take(cursor)
    assert_in_step(packets, fake.now_ns)
    resumed = fake.now_ns
    fake.now_ns = await feed.send(encode, 16, resumed)
    packets += take(cursor)
    fake.now_ns += 2 * second
    encode._check_silence()
    await settle(encode)
    assert encode.silence_fills == 2
    packets += take(cursor)
    assert cursor.cuts == 0
    assert continuous(packets)
    # The track covers the whole six seconds, in step with the clock: no stall, no
    # speed change.
    assert_in_step(packets, fake.now_ns)
    assert packets[0].pts == first_input * RATIO - 1024
    cursor.close()


async def test_aac_gap_after_a_reconnect(audio: tuple[Harness, FakeTime]) -> None:
    h, fake = audio
    handle, cursor = aac(h)
    encode = handle.rendition
    feed = AudioFeed(h.media)
    second = 1_000_000_000
    end = await feed.send(encode, 16, fake.now_ns)
    # The camera's audio connection drops and comes back 0.3 s later (too short for
    # silence): its parts start at 0 again, and their time goes on from the clock.
    feed.seq = 0
    resumed = end + 300_000_000
    fake.now_ns = await feed.send(encode, 16, resumed)
    await settle(encode)
    assert encode.silence_fills == 0
    packets = take(cursor)
    steps = [b.pts - (a.pts + a.duration) for a, b in itertools.pairwise(packets)]
    gaps = [s for s in steps if s]
    assert len(gaps) == 1
    # The gap is the time the camera was away, less the splice's padding to a frame.
    away = (resumed - end) * AAC_RATE // second
    assert away - 2 * 1024 <= gaps[0] <= away
    cursor.close()


def mpeg2_frames(count: int) -> list[Frame]:
    """Return MPEG-2 pictures as the ingest publishes them, in decode order.

    As some cameras do, only the first GOP repeats the sequence header in its payload;
    every GOP's cut point carries it in ``join``.
    """
    frames = []
    for seq, (picture, pts) in enumerate(mpeg2_pictures(count)):
        data, cut = picture, None
        if picture.startswith(b"\x00\x00\x01\xb3"):  # sequence header, then GOP header
            gop = picture.index(b"\x00\x00\x01\xb8")
            if seq:
                data = picture[gop:]
            cut = CutPoint(join=picture if seq else b"")
        frames.append(
            Frame(
                payload=data,
                content_type="video/mpeg",
                seq=seq,
                pts=pts,
                received_ns=seq * 40_000_000,
                cut=cut,
            )
        )
    return frames


async def test_mpeg2_source_encodes_from_a_gop() -> None:
    camera = CameraConfig(
        name="cam", index=1, source="sim", mjpeg=False, mpeg2=True, video_source=VideoSource.MPEG2
    )
    h = Harness(camera)
    try:
        handle = h.renditions.acquire(h264_key())
        encode = handle.rendition
        assert encode.source is StreamKind.MPEG2
        on_frame = h.media.on_frame(StreamKind.MPEG2)
        frames = mpeg2_frames(40)
        cuts = [i for i, f in enumerate(frames) if f.cut is not None]
        assert len(cuts) >= 4

        async def feed(part: Sequence[Frame]) -> None:
            for frame in part:
                on_frame(frame)
                async with asyncio.timeout(10):
                    await encode.worker.wait_idle()

        await feed(frames[:5])  # nobody watches yet: not even decoded
        assert encode.pipeline.counters.frames_in == 0
        # A viewer comes in the middle of the first GOP: the encode starts at the next,
        # from its cut point's join (the sequence header is not in the payload).
        cursor = encode.ring.subscribe()
        await feed(frames[5 : cuts[2] + 3])
        first = take(cursor)
        cursor.close()
        assert encode.pipeline.counters.frames_in == cuts[2] + 3 - cuts[1]
        # Two pictures go by unwatched: the next viewer's encode resumes at a GOP.
        await feed(frames[cuts[2] + 3 : cuts[2] + 5])
        cursor = encode.ring.subscribe()
        cursor.request_keyframe()
        await feed(frames[cuts[2] + 5 :])
        second = take(cursor)
        cursor.close()
        assert encode.pipeline.counters.frames_in == cuts[2] + 3 - cuts[1] + len(frames) - cuts[3]
        assert encode.stats()["failed"] == 0
        shown = sorted(f.pts for f in frames)
        for out in (first, second):
            assert is_idr(out[0])
            assert len(decode(out)) == len(out)
            pts = [f.pts for f in out]
            assert pts == sorted(set(pts))
            assert set(pts) <= set(shown)
        # Display order: each picture in turn from the GOP's first (the decoder holds one).
        assert [f.pts for f in first] == shown[cuts[1] : cuts[1] + len(first)]
        assert len(first) >= cuts[2] + 3 - cuts[1] - 1
    finally:
        await h.media.aclose()


def held(gate: KeyframeGate) -> bool:
    """Return whether ``gate`` holds a request (a call: mypy does not narrow it)."""
    return gate.pending


def test_a_request_inside_the_window_waits_for_its_end_not_for_the_next_scheduled_idr() -> None:
    gate = KeyframeGate()
    assert gate.request(10.0)
    assert not gate.request(10.2)  # a viewer joining 200 ms after the first: held
    assert held(gate)
    assert not gate.poll(10.4)  # still inside the window
    assert gate.poll(10.5)  # the window ended: it goes to the encoder
    assert not held(gate)
    assert not gate.poll(10.6)
    assert (gate.requested, gate.granted, gate.limited, gate.deferred) == (2, 2, 1, 1)
    # Held again, the window's end comes with a keyframe due anyway: nothing forced.
    assert not gate.request(10.7)
    assert not gate.poll(11.0, due=True)
    assert not held(gate)
    assert gate.granted == 2


def test_any_idr_published_after_a_held_request_serves_it() -> None:
    gate = KeyframeGate()
    assert gate.request(10.0)
    for t in (10.01, 10.02, 10.03):  # a burst of PLIs before the first IDR is out
        assert not gate.request(t)
    gate.keyframe()  # the granted IDR is published: every reader asking gets it
    assert not held(gate)
    assert not gate.poll(10.6)
    assert (gate.granted, gate.limited, gate.deferred) == (1, 3, 0)
