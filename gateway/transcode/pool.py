"""Shared variants: one transcoder per distinct ImageParams of a camera, refcounted."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.media import Frame

from .image import JpegPipeline
from .params import ImageParams
from .transcoder import JPEG, JpegTranscoder

_log = logging.getLogger(__name__)

#: Sink for one variant's output frames (e.g. a hub stream's publish).
Sink = Callable[[Frame], None]
#: Builds a variant's transcoder around its sink (tests inject slow or failing ones).
TranscoderFactory = Callable[[ImageParams, Sink], JpegTranscoder]


class VariantLimitError(RemoteProtocolError):
    """A request needs a new variant (or snapshot job) but the pool is at its bound."""


@dataclass(slots=True)
class _Variant:
    """One live transcoder and who is using it."""

    transcoder: JpegTranscoder
    #: Handles not yet released.
    refs: int = 0
    #: When an unused variant is stopped (pool clock), or None while in use.
    deadline: float | None = None


class VariantHandle:
    """One client's claim on a shared variant; release it (or use ``with``) when done."""

    __slots__ = ("_pool", "_released", "params", "transcoder")

    def __init__(self, pool: VariantPool, params: ImageParams, transcoder: JpegTranscoder):
        """Bind the claim (the pool creates handles)."""
        self._pool = pool
        self._released = False
        self.params = params
        self.transcoder = transcoder

    @property
    def latest(self) -> Frame | None:
        """Return the variant's newest output frame, if it produced one yet."""
        return self.transcoder.latest

    @property
    def released(self) -> bool:
        """Return True once released."""
        return self._released

    def release(self) -> None:
        """Give the claim back (idempotent)."""
        self._pool.release(self)

    def __enter__(self) -> VariantHandle:
        """Return the handle."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the handle."""
        self.release()


class VariantPool:
    """Runs one ``JpegTranscoder`` per distinct ``ImageParams`` while clients want it.

    The camera's source frames go to ``submit``, which feeds every variant in use; a
    variant's output goes to the sink ``sink_factory(params)`` returned when the
    variant started. A variant nobody holds is stopped after ``linger`` seconds (and is
    not fed meanwhile); ``on_stopped(params)`` is then called so its sink can go.
    """

    def __init__(
        self,
        sink_factory: Callable[[ImageParams], Sink],
        *,
        loop: asyncio.AbstractEventLoop,
        max_variants: int = 8,
        max_snapshot_jobs: int = 8,
        linger: float = 2.0,
        on_stopped: Callable[[ImageParams], None] | None = None,
        clock: Callable[[], float] | None = None,
        transcoder_factory: TranscoderFactory | None = None,
    ) -> None:
        """Create an empty pool.

        :param sink_factory: returns the output callback of a variant when it starts.
        :param loop: the event loop everything is called on.
        :param max_variants: distinct variants alive at once (in use or lingering).
        :param max_snapshot_jobs: distinct one-off snapshot transcodes in progress.
        :param linger: seconds an unused variant keeps its worker before it stops.
        :param on_stopped: called with the params of each variant that stopped.
        :param clock: seconds, monotonic (default ``loop.time``); see ``handle_timer``.
        :param transcoder_factory: builds transcoders (default ``JpegTranscoder``).
        """
        if max_variants < 1 or max_snapshot_jobs < 1 or linger < 0:
            raise LocalProtocolError("max_variants/max_snapshot_jobs >= 1, linger >= 0")
        self._sink_factory = sink_factory
        self._loop = loop
        self._max_variants = max_variants
        self._max_snapshot_jobs = max_snapshot_jobs
        self._linger = linger
        self._on_stopped = on_stopped
        self._clock = clock or loop.time
        self._factory = transcoder_factory or self._default_transcoder
        self._variants: dict[ImageParams, _Variant] = {}
        self._closing: set[JpegTranscoder] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._snapshot_jobs: dict[tuple[ImageParams, int, int], asyncio.Future[bytes]] = {}
        self._snapshot_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False
        #: Variants started / stopped since the pool was made.
        self.started = 0
        self.stopped = 0
        #: Snapshot requests served by a variant, by a shared job, or by a new job.
        self.snapshots_from_variant = 0
        self.snapshots_shared = 0
        self.snapshots_transcoded = 0

    def __len__(self) -> int:
        """Return the number of live variants (in use or lingering)."""
        return len(self._variants)

    def acquire(self, params: ImageParams) -> VariantHandle:
        """Return a claim on the variant for ``params``, starting it if needed.

        Raises LocalProtocolError for pass-through params (serve the source instead)
        and VariantLimitError when ``max_variants`` distinct variants are alive.
        """
        if self._closed:
            raise LocalProtocolError("the variant pool is closed")
        if params.is_passthrough:
            raise LocalProtocolError("pass-through needs no variant; serve the source frames")
        variant = self._variants.get(params)
        if variant is None:
            variant = self._start(params)
        variant.refs += 1
        variant.deadline = None
        return VariantHandle(self, params, variant.transcoder)

    def release(self, handle: VariantHandle) -> None:
        """Give back a claim; the last one arms the linger timer (idempotent per handle)."""
        if handle._released:
            return
        handle._released = True
        variant = self._variants.get(handle.params)
        if variant is None or variant.transcoder is not handle.transcoder:
            return  # already stopped (pool closed)
        variant.refs -= 1
        if variant.refs:
            return
        if self._linger == 0:
            self._stop(handle.params)
            return
        variant.deadline = self._clock() + self._linger
        self._arm()

    def submit(self, frame: Frame) -> None:
        """Feed a source frame to every variant in use (loop thread; O(variants))."""
        for variant in self._variants.values():
            if variant.refs:
                variant.transcoder.submit(frame)

    def get_timer(self) -> float | None:
        """Return when the next unused variant is due to stop (pool clock), or None."""
        deadlines = [v.deadline for v in self._variants.values() if v.deadline is not None]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> None:
        """Stop every unused variant whose linger ended at or before ``now``."""
        for params, variant in list(self._variants.items()):
            if variant.deadline is not None and variant.deadline <= now:
                self._stop(params)

    async def snapshot(self, params: ImageParams, frame: Frame) -> Frame:
        """Return ``frame`` transformed by ``params`` (an Axis snapshot with parameters).

        Served from the running variant when it already transcoded this frame (or a
        newer one); otherwise one transcode per (params, frame) shared by every
        concurrent caller, in the pool's snapshot thread. Raises RemoteProtocolError
        when the frame does not decode, VariantLimitError when too many distinct jobs
        are in progress.
        """
        if params.is_passthrough:
            return frame
        variant = self._variants.get(params)
        latest = variant.transcoder.latest if variant is not None else None
        if latest is not None and latest.received_ns >= frame.received_ns:
            self.snapshots_from_variant += 1
            return latest
        key = (params, frame.seq, frame.received_ns)
        job = self._snapshot_jobs.get(key)
        if job is not None:
            self.snapshots_shared += 1
        else:
            if self._closed:
                raise LocalProtocolError("the variant pool is closed")
            if len(self._snapshot_jobs) >= self._max_snapshot_jobs:
                raise VariantLimitError(
                    f"too many snapshot transcodes in progress (limit {self._max_snapshot_jobs})"
                )
            if self._snapshot_executor is None:
                self._snapshot_executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="transcode-snapshot"
                )
            pipeline = JpegPipeline(params)
            job = self._loop.run_in_executor(
                self._snapshot_executor, pipeline.process, frame.payload
            )
            self._snapshot_jobs[key] = job
            job.add_done_callback(lambda _: self._snapshot_jobs.pop(key, None))
            self.snapshots_transcoded += 1
        # A caller that goes away must not cancel the job others are waiting for.
        data = await asyncio.shield(job)
        return replace(frame, payload=data, content_type=JPEG)

    def stats(self) -> dict[str, object]:
        """Return the pool's state and per-variant counters as a JSON-ready dict."""
        return {
            "max_variants": self._max_variants,
            "started": self.started,
            "stopped": self.stopped,
            "snapshots": {
                "from_variant": self.snapshots_from_variant,
                "shared": self.snapshots_shared,
                "transcoded": self.snapshots_transcoded,
            },
            "variants": [
                {
                    "params": params.describe(),
                    "clients": variant.refs,
                    "state": "active" if variant.refs else "lingering",
                    **variant.transcoder.counters.snapshot(),
                }
                for params, variant in self._variants.items()
            ],
        }

    async def aclose(self) -> None:
        """Stop every variant and wait for the worker threads to finish their frame."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for params in list(self._variants):
            self._stop(params)
        jobs = list(self._snapshot_jobs.values())
        if jobs:
            await asyncio.wait(jobs)
        if self._snapshot_executor is not None:
            self._snapshot_executor.shutdown(wait=False)
        for transcoder in list(self._closing):
            await transcoder.wait_idle()
        self._closing.clear()

    def _default_transcoder(self, params: ImageParams, sink: Sink) -> JpegTranscoder:
        """Return the standard transcoder."""
        return JpegTranscoder(params, sink, loop=self._loop)

    def _start(self, params: ImageParams) -> _Variant:
        """Start the variant for ``params``, making room by stopping an unused one."""
        if len(self._variants) >= self._max_variants:
            idle = [(v.deadline, p) for p, v in self._variants.items() if v.deadline is not None]
            if not idle:
                raise VariantLimitError(
                    f"too many image variants in use for this camera (limit "
                    f"{self._max_variants}); use an existing resolution/compression"
                )
            self._stop(min(idle, key=lambda item: item[0])[1])
        transcoder = self._factory(params, self._sink_factory(params))
        variant = _Variant(transcoder)
        self._variants[params] = variant
        self.started += 1
        _log.debug("variant %s started", params.describe())
        return variant

    def _stop(self, params: ImageParams) -> None:
        """Stop one variant and tell the owner of its sink."""
        variant = self._variants.pop(params)
        variant.transcoder.close()
        self._closing = {t for t in self._closing if t.frames_held}
        if variant.transcoder.frames_held:
            self._closing.add(variant.transcoder)
        self.stopped += 1
        _log.debug("variant %s stopped", params.describe())
        if self._on_stopped is not None:
            self._on_stopped(params)

    def _arm(self) -> None:
        """(Re)schedule the loop timer for the earliest linger deadline."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.get_timer()
        if deadline is None or self._closed:
            return
        self._timer = self._loop.call_later(max(deadline - self._clock(), 0.0), self._on_timer)

    def _on_timer(self) -> None:
        """Stop what is due, then wait for the next deadline."""
        self._timer = None
        self.handle_timer(self._clock())
        self._arm()
