"""One shared JPEG variant: a worker thread, latest-wins input, output on the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.media import Frame, Payload

from .image import DEFAULT_MAX_SOURCE_PIXELS, JpegPipeline
from .params import ImageParams

_log = logging.getLogger(__name__)

#: Content type of every variant's output.
JPEG = "image/jpeg"


class Processor(Protocol):
    """Blocking payload transform run in the worker thread (``JpegPipeline``, or a test stub)."""

    def process(self, payload: Payload) -> bytes:
        """Return the output JPEG; raise RemoteProtocolError for a bad source frame."""
        ...


@dataclass(slots=True)
class TranscodeCounters:
    """What one variant did, for ``/api`` and ``/metrics`` (updated on the loop thread)."""

    #: Source frames submitted.
    frames_in: int = 0
    #: Transcoded frames handed to ``on_output``.
    frames_out: int = 0
    #: Source frames replaced by a newer one before the worker got to them.
    frames_skipped: int = 0
    #: Source frames dropped because they did not decode (or the transform failed).
    frames_failed: int = 0
    #: Worker time spent on transcoding, nanoseconds (decode + transform + encode).
    encode_ns_total: int = 0
    #: Worker time of the most recent frame, nanoseconds.
    encode_ns_last: int = 0
    #: Reason the most recent failed frame was dropped.
    last_error: str | None = None

    def snapshot(self) -> dict[str, object]:
        """Return the counters as a JSON-ready dict (with mean encode milliseconds)."""
        done = self.frames_out + self.frames_failed
        mean_ms = self.encode_ns_total / done / 1e6 if done else 0.0
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "frames_skipped": self.frames_skipped,
            "frames_failed": self.frames_failed,
            "encode_ms_mean": round(mean_ms, 3),
            "encode_ms_last": round(self.encode_ns_last / 1e6, 3),
            "encode_seconds_total": self.encode_ns_total / 1e9,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class _Result:
    """What the worker hands back to the loop for one frame."""

    #: The transcoded frame, or None when the source frame was dropped.
    frame: Frame | None
    #: Why the frame was dropped.
    error: str | None
    #: Worker time spent, nanoseconds.
    elapsed_ns: int


class JpegTranscoder:
    """Transcodes submitted JPEG frames for one ``ImageParams`` in one worker thread.

    At most two source frames are held: one in the worker and the newest pending one;
    a frame submitted while another is pending replaces it (counted as skipped). Output
    frames keep the source's ``seq``, ``pts``, ``time_base``, ``received_ns`` and
    headers, and are passed to ``on_output`` on the event loop thread, in order.
    """

    def __init__(
        self,
        params: ImageParams,
        on_output: Callable[[Frame], None],
        *,
        loop: asyncio.AbstractEventLoop,
        pipeline: Processor | None = None,
        max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS,
        clock: Callable[[], int] = time.monotonic_ns,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        """Create the variant; the worker thread starts with the first frame.

        :param params: the variant; must not be pass-through.
        :param on_output: called on the loop thread with each transcoded frame.
        :param loop: the event loop ``submit`` is called on.
        :param pipeline: the blocking transform (default ``JpegPipeline(params)``).
        :param max_source_pixels: larger source pictures are dropped undecoded.
        :param clock: monotonic nanoseconds, for the encode-time counters.
        """
        if params.is_passthrough:
            raise LocalProtocolError("a pass-through request needs no transcoder")
        self.params = params
        self.counters = TranscodeCounters()
        #: The newest transcoded frame (snapshots of an active variant are served from it).
        self.latest: Frame | None = None
        self._on_output = on_output
        self._loop = loop
        self._pipeline: Processor = pipeline or JpegPipeline(
            params, max_source_pixels=max_source_pixels
        )
        self._clock = clock
        self._log = logger or _log
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"transcode[{params.describe()}]"
        )
        self._in_flight: asyncio.Future[_Result] | None = None
        self._pending: Frame | None = None
        self._closed = False

    @property
    def frames_held(self) -> int:
        """Return how many source frames are held (in the worker plus pending), at most 2."""
        return (self._in_flight is not None) + (self._pending is not None)

    @property
    def closed(self) -> bool:
        """Return True once ``close`` was called."""
        return self._closed

    def submit(self, frame: Frame) -> None:
        """Queue ``frame`` for transcoding, replacing any older pending frame (loop thread)."""
        if self._closed:
            raise LocalProtocolError(f"transcoder {self.params.describe()} is closed")
        self.counters.frames_in += 1
        if self._in_flight is None:
            self._start(frame)
            return
        if self._pending is not None:
            self.counters.frames_skipped += 1
        self._pending = frame

    def close(self) -> None:
        """Stop taking frames; drop the pending one; the worker exits after the current one."""
        if self._closed:
            return
        self._closed = True
        if self._pending is not None:
            self.counters.frames_skipped += 1
            self._pending = None
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def wait_idle(self) -> None:
        """Wait until no frame is held (after ``close``: until the worker is done)."""
        while self._in_flight is not None:
            await asyncio.wait({self._in_flight})

    def _start(self, frame: Frame) -> None:
        """Hand ``frame`` to the worker thread."""
        future = self._loop.run_in_executor(self._executor, self._work, frame)
        self._in_flight = future
        future.add_done_callback(self._done)

    def _work(self, frame: Frame) -> _Result:
        """Transcode one frame (worker thread)."""
        started = self._clock()
        try:
            data = self._pipeline.process(frame.payload)
        except RemoteProtocolError as exc:
            return _Result(None, str(exc), self._clock() - started)
        output = replace(frame, payload=data, content_type=JPEG)
        return _Result(output, None, self._clock() - started)

    def _done(self, future: asyncio.Future[_Result]) -> None:
        """Account for the finished frame, start the pending one, deliver (loop thread)."""
        self._in_flight = None
        if self._closed or future.cancelled():
            return
        if self._pending is not None:
            # Keep the worker busy before running the consumer's callback.
            pending, self._pending = self._pending, None
            self._start(pending)
        error = future.exception()
        if error is not None:
            # A bug in the transform must not stop the variant: drop the frame, go on.
            self.counters.frames_failed += 1
            self.counters.last_error = f"{type(error).__name__}: {error}"
            self._log.error("transcode %s failed", self.params.describe(), exc_info=error)
            return
        result = future.result()
        self.counters.encode_ns_total += result.elapsed_ns
        self.counters.encode_ns_last = result.elapsed_ns
        if result.frame is None:
            self.counters.frames_failed += 1
            self.counters.last_error = result.error
            self._log.debug(
                "transcode %s dropped a frame: %s", self.params.describe(), result.error
            )
            return
        self.counters.frames_out += 1
        self.latest = result.frame
        self._on_output(result.frame)
