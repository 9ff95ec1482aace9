"""JPEG variants as camera renditions, and one-off snapshot transcodes shared per frame.

A ``JpegVariant`` is the rendition ``RenditionKey("jpeg", ImageParams)``: one
``JpegTranscoder`` (one worker thread, latest-wins) fed with the camera's MJPEG
frames while its stream has clients, publishing into its own hub ``Stream`` that
the Axis MJPEG clients asking for those image parameters read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from gateway.errors import CapacityError, LocalProtocolError
from gateway.hub.renditions import RenditionKey
from gateway.media import Frame, StreamKind

from .image import JpegPipeline
from .params import ImageParams
from .transcoder import JPEG, JpegTranscoder

if TYPE_CHECKING:
    from gateway.hub.camera import CameraMedia
    from gateway.hub.stream import Stream

#: The rendition kind of JPEG variants.
JPEG_KIND = "jpeg"

#: Builds a variant's transcoder around its output (tests inject slow or failing ones).
TranscoderFactory = Callable[[ImageParams, Callable[[Frame], None]], JpegTranscoder]


def jpeg_key(params: ImageParams) -> RenditionKey[JpegVariant]:
    """Return the rendition key of the variant for ``params``."""
    if params.is_passthrough:
        raise LocalProtocolError("pass-through needs no variant; serve the source frames")
    return RenditionKey(JPEG_KIND, params)


class SnapshotLimitError(CapacityError):
    """Too many distinct one-off snapshot transcodes are in progress."""


class JpegVariant:
    """One shared JPEG variant of a camera: a transcoder and the stream it publishes into."""

    def __init__(
        self,
        media: CameraMedia,
        params: ImageParams,
        *,
        transcoder_factory: TranscoderFactory | None = None,
    ) -> None:
        """Start the variant: its stream, its transcoder, and its feed of MJPEG frames."""
        self.params = params
        self.stream: Stream = media.make_stream(f"{media.camera.name} {params.describe()}")
        factory = transcoder_factory or (lambda p, out: JpegTranscoder(p, out, loop=media.loop))
        self.transcoder = factory(params, self._publish)
        self._detach = media.feed(StreamKind.MJPEG, self._submit)

    @property
    def latest(self) -> Frame | None:
        """Return the variant's newest output frame, if it produced one yet."""
        return self.transcoder.latest

    def _submit(self, frame: Frame) -> None:
        # Nobody reads a lingering variant: transcoding for it would be wasted.
        if len(self.stream):
            self.transcoder.submit(frame)

    def _publish(self, frame: Frame) -> None:
        # The worker may finish a frame after the variant stopped.
        if not self.stream.closed:
            self.stream.publish(frame)

    def stop(self) -> None:
        """Stop the feed and the transcoder; end the stream's clients."""
        self._detach()
        self.transcoder.close()
        self.stream.close()

    async def wait_stopped(self) -> None:
        """Wait for the worker to finish its frame."""
        await self.transcoder.wait_idle()

    def busy(self) -> bool:
        """Return True while the transcoder holds a frame."""
        return bool(self.transcoder.frames_held)

    def consumers(self) -> int:
        """Return the clients reading the variant's stream."""
        return len(self.stream)

    def upstream_fps(self) -> tuple[StreamKind, float | None] | None:
        """Return the camera rate the variant's clients need (None while it has none)."""
        if not len(self.stream):
            return None
        return StreamKind.MJPEG, self.stream.wanted_fps

    def stats(self) -> dict[str, object]:
        """Return the variant's figures (the pool's per-variant entry before renditions)."""
        counters = self.transcoder.counters
        return {
            "clients": len(self.stream),
            "skipped": counters.skipped,
            "failed": counters.failed,
            **counters.snapshot(),
        }


class SnapshotJobs:
    """One-off snapshot transcodes with image parameters, shared by concurrent callers."""

    def __init__(self, *, loop: asyncio.AbstractEventLoop, max_jobs: int = 8) -> None:
        """Allow ``max_jobs`` distinct transcodes in progress at once."""
        if max_jobs < 1:
            raise LocalProtocolError("max_jobs must be >= 1")
        self._loop = loop
        self._max_jobs = max_jobs
        self._jobs: dict[tuple[ImageParams, int, int], asyncio.Future[bytes]] = {}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False
        #: Snapshot requests served by a variant, by a shared job, or by a new job.
        self.from_variant = 0
        self.shared = 0
        self.transcoded = 0

    async def snapshot(
        self, params: ImageParams, frame: Frame, variant: JpegVariant | None = None
    ) -> Frame:
        """Return ``frame`` transformed by ``params`` (an Axis snapshot with parameters).

        Served from the running ``variant`` when it already transcoded this frame (or a
        newer one); otherwise one transcode per (params, frame) shared by every
        concurrent caller, in one snapshot thread. Raises RemoteProtocolError when the
        frame does not decode, ``SnapshotLimitError`` when too many jobs are running.
        """
        if params.is_passthrough:
            return frame
        latest = None if variant is None else variant.latest
        if latest is not None and latest.received_ns >= frame.received_ns:
            self.from_variant += 1
            return latest
        key = (params, frame.seq, frame.received_ns)
        job = self._jobs.get(key)
        if job is not None:
            self.shared += 1
        else:
            job = self._start(key, params, frame)
        # A caller that goes away must not cancel the job others are waiting for.
        data = await asyncio.shield(job)
        return replace(frame, payload=data, content_type=JPEG)

    def _start(
        self, key: tuple[ImageParams, int, int], params: ImageParams, frame: Frame
    ) -> asyncio.Future[bytes]:
        if self._closed:
            raise LocalProtocolError("the snapshot transcoder is closed")
        if len(self._jobs) >= self._max_jobs:
            raise SnapshotLimitError(
                f"too many snapshot transcodes in progress (limit {self._max_jobs})"
            )
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="transcode-snapshot"
            )
        job = self._loop.run_in_executor(
            self._executor, JpegPipeline(params).process, frame.payload
        )
        self._jobs[key] = job
        job.add_done_callback(lambda _: self._jobs.pop(key, None))
        self.transcoded += 1
        return job

    def stats(self) -> dict[str, int]:
        """Return how snapshot requests were served."""
        return {
            "from_variant": self.from_variant,
            "shared": self.shared,
            "transcoded": self.transcoded,
        }

    async def aclose(self) -> None:
        """Wait for the jobs in progress, then let the thread go."""
        self._closed = True
        jobs = list(self._jobs.values())
        if jobs:
            await asyncio.wait(jobs)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
