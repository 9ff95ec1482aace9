"""One shared JPEG variant: a ``Worker`` thread, latest-wins input, output on the event loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from gateway.errors import LocalProtocolError
from gateway.media import Frame, Payload

from .image import DEFAULT_MAX_SOURCE_PIXELS, JpegPipeline
from .params import ImageParams
from .worker import InputPolicy, Worker, WorkerCounters

_log = logging.getLogger(__name__)

#: Content type of every variant's output.
JPEG = "image/jpeg"


class Processor(Protocol):
    """Blocking payload transform run in the worker thread (``JpegPipeline``, or a test stub)."""

    def process(self, payload: Payload) -> bytes:
        """Return the output JPEG; raise RemoteProtocolError for a bad source frame."""
        ...


@dataclass(slots=True)
class TranscodeCounters(WorkerCounters):
    """What one variant did, for ``/api`` and ``/metrics``, in the variant's words."""

    @property
    def frames_in(self) -> int:
        """Return the source frames submitted."""
        return self.items_in

    @property
    def frames_out(self) -> int:
        """Return the transcoded frames handed to ``on_output``."""
        return self.items_out

    @property
    def frames_skipped(self) -> int:
        """Return the source frames replaced by a newer one before the worker got to them."""
        return self.skipped

    @property
    def frames_failed(self) -> int:
        """Return the source frames dropped: undecodable, or the transform failed."""
        return self.failed

    @property
    def encode_ns_total(self) -> int:
        """Return the worker time spent transcoding, nanoseconds (decode + transform + encode)."""
        return self.busy_ns_total

    @property
    def encode_ns_last(self) -> int:
        """Return the worker time of the most recent frame, nanoseconds."""
        return self.busy_ns_last

    def snapshot(self) -> dict[str, object]:
        """Return the counters as a JSON-ready dict (with mean encode milliseconds)."""
        return {
            "frames_in": self.items_in,
            "frames_out": self.items_out,
            "frames_skipped": self.skipped,
            "frames_failed": self.failed,
            "encode_ms_mean": self.busy_ms_mean,
            "encode_ms_last": round(self.busy_ns_last / 1e6, 3),
            "encode_seconds_total": self.busy_ns_total / 1e9,
            "last_error": self.last_error,
        }


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
        self._pipeline: Processor = pipeline or JpegPipeline(
            params, max_source_pixels=max_source_pixels
        )
        self._worker: Worker[Frame, Frame] = Worker(
            self._transcode,
            self._deliver,
            loop=loop,
            policy=InputPolicy.LATEST,
            name=f"transcode {params.describe()}",
            clock=clock,
            logger=logger or _log,
            counters=self.counters,
        )

    @property
    def frames_held(self) -> int:
        """Return how many source frames are held (in the worker plus pending), at most 2."""
        return self._worker.items_held

    @property
    def closed(self) -> bool:
        """Return True once ``close`` was called."""
        return self._worker.closed

    def submit(self, frame: Frame) -> None:
        """Queue ``frame`` for transcoding, replacing any older pending frame (loop thread)."""
        self._worker.submit(frame)

    def close(self) -> None:
        """Stop taking frames; drop the pending one; the worker exits after the current one."""
        self._worker.close()

    async def wait_idle(self) -> None:
        """Wait until no frame is held (after ``close``: until the worker is done)."""
        await self._worker.wait_idle()

    def _transcode(self, frame: Frame, reset: bool) -> tuple[Frame]:
        """Transcode one frame (worker thread; JPEG keeps no state, so ``reset`` is moot)."""
        data = self._pipeline.process(frame.payload)
        return (replace(frame, payload=data, content_type=JPEG),)

    def _deliver(self, frame: Frame) -> None:
        """Keep the newest output and pass it on (loop thread)."""
        self.latest = frame
        self._on_output(frame)
