"""JpegTranscoder: off-loop work, latest-wins bound, metadata kept, bad frames dropped."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from gateway.demux.codec import jpeg_size
from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.media import Frame, Payload
from gateway.transcode import ImageParams, JpegPipeline, JpegTranscoder
from tests.transcode.images import detailed, encode_jpeg, frame

PARAMS = ImageParams(resolution=(80, 60))


class Gated:
    """A pipeline whose every frame waits for the test to open the gate (a slow encoder)."""

    def __init__(self, params: ImageParams = PARAMS) -> None:
        self.gate = threading.Event()
        self.threads: set[int] = set()
        self.seen: list[bytes] = []
        self._inner = JpegPipeline(params)

    def process(self, payload: Payload) -> bytes:
        self.threads.add(threading.get_ident())
        self.seen.append(bytes(payload))
        assert self.gate.wait(10)
        return self._inner.process(payload)


class Collector:
    """Output sink that records frames and the thread it was called on."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.threads: set[int] = set()
        self.changed = asyncio.Event()

    def __call__(self, out: Frame) -> None:
        self.frames.append(out)
        self.threads.add(threading.get_ident())
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.frames) < count:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return encode_jpeg(detailed())


async def test_output_on_loop_thread_work_on_worker_thread(jpeg: bytes) -> None:
    sink = Collector()
    pipeline = Gated()
    pipeline.gate.set()
    transcoder = JpegTranscoder(PARAMS, sink, loop=asyncio.get_running_loop(), pipeline=pipeline)
    source = frame(jpeg, seq=7)
    transcoder.submit(source)
    await sink.wait_for(1)
    await transcoder.wait_idle()
    loop_thread = threading.get_ident()
    assert sink.threads == {loop_thread}
    assert len(pipeline.threads) == 1
    assert loop_thread not in pipeline.threads
    out = sink.frames[0]
    assert jpeg_size(out.payload) == (80, 60)
    assert out.content_type == "image/jpeg"
    assert (out.seq, out.pts, out.time_base, out.received_ns, out.headers) == (
        source.seq,
        source.pts,
        source.time_base,
        source.received_ns,
        source.headers,
    )
    assert transcoder.latest is out
    transcoder.close()


async def test_latest_wins_under_a_slow_encoder_holds_at_most_two(jpeg: bytes) -> None:
    sink = Collector()
    pipeline = Gated()
    transcoder = JpegTranscoder(PARAMS, sink, loop=asyncio.get_running_loop(), pipeline=pipeline)
    ticks = 0
    for seq in range(10):
        transcoder.submit(frame(jpeg, seq))
        assert transcoder.frames_held <= 2
        await asyncio.sleep(0)  # the loop keeps running while the worker is stuck
        ticks += 1
    assert ticks == 10
    assert transcoder.frames_held == 2
    assert transcoder.counters.frames_skipped == 8
    pipeline.gate.set()
    await sink.wait_for(2)
    await transcoder.wait_idle()
    assert [f.seq for f in sink.frames] == [0, 9]
    counters = transcoder.counters
    assert (counters.frames_in, counters.frames_out, counters.frames_skipped) == (10, 2, 8)
    assert transcoder.frames_held == 0
    assert counters.encode_ns_total > 0
    transcoder.close()


async def test_corrupt_frames_are_counted_and_skipped(jpeg: bytes) -> None:
    sink = Collector()
    transcoder = JpegTranscoder(PARAMS, sink, loop=asyncio.get_running_loop())
    inputs = [jpeg, b"junk", jpeg, b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x30\x00\x40xx" * 5, jpeg]
    for seq, payload in enumerate(inputs):
        transcoder.submit(frame(payload, seq))
        await transcoder.wait_idle()  # one at a time, so nothing is skipped
    await sink.wait_for(3)
    assert [f.seq for f in sink.frames] == [0, 2, 4]
    counters = transcoder.counters
    assert (counters.frames_in, counters.frames_out, counters.frames_failed) == (5, 3, 2)
    assert counters.last_error is not None
    assert "undecodable JPEG" in counters.last_error
    snapshot = counters.snapshot()
    assert snapshot["frames_failed"] == 2
    assert isinstance(snapshot["encode_ms_mean"], float)
    transcoder.close()


class Buggy:
    """A transform with a bug on every other frame."""

    def __init__(self) -> None:
        self.calls = 0

    def process(self, payload: Payload) -> bytes:
        self.calls += 1
        if self.calls % 2:
            raise ZeroDivisionError("bug")
        return bytes(payload)


async def test_a_bug_in_the_transform_does_not_kill_the_variant(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Collector()
    transcoder = JpegTranscoder(
        ImageParams(rotation=90), sink, loop=asyncio.get_running_loop(), pipeline=Buggy()
    )
    with caplog.at_level(logging.ERROR):
        for seq in range(4):
            transcoder.submit(frame(b"x", seq))
            await transcoder.wait_idle()
    assert [f.seq for f in sink.frames] == [1, 3]
    assert transcoder.counters.frames_failed == 2
    assert transcoder.counters.last_error == "ZeroDivisionError: bug"
    assert "transcode r90 failed" in caplog.text
    transcoder.close()


async def test_close_drops_pending_and_refuses_frames(jpeg: bytes) -> None:
    sink = Collector()
    pipeline = Gated()
    transcoder = JpegTranscoder(PARAMS, sink, loop=asyncio.get_running_loop(), pipeline=pipeline)
    transcoder.submit(frame(jpeg, 0))
    transcoder.submit(frame(jpeg, 1))
    transcoder.close()
    assert transcoder.closed
    with pytest.raises(LocalProtocolError, match="closed"):
        transcoder.submit(frame(jpeg, 2))
    pipeline.gate.set()
    await transcoder.wait_idle()
    assert sink.frames == []  # output after close is dropped
    assert transcoder.counters.frames_skipped == 1
    assert transcoder.frames_held == 0


def test_passthrough_needs_no_transcoder() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(LocalProtocolError, match="pass-through"):
            JpegTranscoder(ImageParams(), lambda _: None, loop=loop)
    finally:
        loop.close()


async def test_undecodable_error_type(jpeg: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        JpegPipeline(PARAMS).process(jpeg[:100])
