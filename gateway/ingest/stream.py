"""CameraStream: one upstream stream per camera, supervised (reconnect, stall, backoff).

The per-kind tables live in ``gateway.ingest.kinds``, one connection in
``gateway.ingest.session`` and what gets logged when in ``gateway.ingest.outage``; this
module keeps the lifecycle, the reconnect loop, the state and counters, and the
upstream rate (``set_fps``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from gateway.config import CameraConfig
from gateway.errors import UpstreamError
from gateway.ingest.auth import Authenticator
from gateway.ingest.backoff import Clock, Failure, ReconnectPolicy, SystemClock
from gateway.ingest.connection import Target
from gateway.ingest.kinds import STAMPERS, stream_path
from gateway.ingest.outage import OutageLog
from gateway.ingest.redact import redact, register_secrets
from gateway.ingest.session import Session
from gateway.media import NS_PER_SECOND, Frame, StreamKind, StreamState


class StreamLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefix every message with the camera and stream, and redact it."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Return the prefixed, redacted message."""
        extra = self.extra or {}
        return redact(f"camera {extra['camera']} {extra['stream']}: {msg}"), kwargs


class CameraStream:
    """One upstream connection (with reconnects) for one stream of one camera."""

    def __init__(
        self,
        camera: CameraConfig,
        kind: StreamKind,
        *,
        base_url: str | None = None,
        on_frame: Callable[[Frame], None] | None = None,
        logger: logging.Logger | None = None,
        fps: int | None = None,
        policy: ReconnectPolicy | None = None,
        stall_timeout: float | None = None,
        connect_timeout: float = 10.0,
        fps_window: float = 2.0,
        clock: Clock | None = None,
    ) -> None:
        """Prepare (but do not start) ingest of ``kind`` from ``camera``.

        :param camera: the camera's configuration (credentials, channel, rate, stall timeout).
        :param kind: which stream to ingest.
        :param base_url: overrides ``camera.source`` (the in-process simulator's URL).
        :param on_frame: called synchronously for every frame; must not block.
        :param logger: parent logger (default ``gateway.ingest``).
        :param fps: rate asked upstream (default ``camera.fps``); ``set_fps(None)``
            comes back to it.
        :param policy: reconnect policy (tests pass short delays).
        :param stall_timeout: seconds without a frame before reconnecting, however many
            bytes arrive (default ``camera.stall_timeout``).
        :param connect_timeout: seconds allowed for connect plus response head.
        :param fps_window: seconds of frame arrivals ``fps_in`` is computed over.
        :param clock: where supervision (backoff, watchdog, log reminders) reads the time
            and waits; tests pass a fake one. Frame timestamps always use the real clock.
        """
        self.camera = camera
        self.kind = kind
        self.on_frame = on_frame
        base = base_url or camera.source
        #: The configured rate: what ``set_fps(None)`` asks for again.
        self._configured_fps = fps if fps is not None else camera.fps
        self._fps = self._configured_fps
        self._base_target = Target.parse(base)
        self._target = self._base_target.with_target(stream_path(camera, kind, self._fps))
        #: Set when ``set_fps`` ended the attempt: reconnect at once, nothing failed.
        self._retarget = False
        self._clock = clock or SystemClock()
        self._auth: Authenticator | None = None
        if camera.username is not None:
            password = camera.password.value if camera.password is not None else ""
            register_secrets([password])
            self._auth = Authenticator(camera.username, password)
        self.log = StreamLogger(
            logger or logging.getLogger("gateway.ingest"),
            {"camera": camera.name, "stream": kind.value},
        )
        self.policy = policy or ReconnectPolicy()
        #: Decides which troubles are logged, and reminds of a stream still down.
        self.outages = OutageLog(settle=self.policy.healthy_after)
        self._bugs_logged: set[str] = set()
        self.stall_timeout = camera.stall_timeout if stall_timeout is None else stall_timeout
        self.connect_timeout = connect_timeout
        self._fps_window_ns = int(fps_window * NS_PER_SECOND)
        self._arrivals: collections.deque[int] = collections.deque(maxlen=1024)
        #: Gives frames their pts over every connection (``kinds.STAMPERS``).
        self.stamper = STAMPERS[kind]()
        self._task: asyncio.Task[None] | None = None
        #: Tasks ``pause`` cancelled, until they finished (``stop`` waits for them).
        self._paused: set[asyncio.Task[None]] = set()
        #: The current connection attempt, if any.
        self._session: Session | None = None
        self._bytes_done = 0
        #: Current state.
        self.state = StreamState.IDLE
        #: The newest frame, for snapshots and new clients.
        self.latest: Frame | None = None
        self.frames_in = 0
        #: Exceptions raised by ``on_frame`` (logged once).
        self.callback_errors = 0
        self.frames_dropped = 0
        #: Connection attempts after a failure (a rate switch is not one).
        self.reconnects = 0
        self.last_error: str | None = None
        self.content_type: str | None = None
        self.boundary: str | None = None
        self.resolution: tuple[int, int] | None = None
        self.codec: str | None = None
        self._copied_done = 0
        #: State changes as (monotonic time, state), newest last (bounded).
        self.history: collections.deque[tuple[float, StreamState]] = collections.deque(maxlen=64)

    # -- public API ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Return the upstream URL (never with credentials)."""
        return redact(self._target.url)

    @property
    def bytes_in(self) -> int:
        """Return bytes read from the camera over all connections."""
        live = self._session.bytes_in if self._session is not None else 0
        return self._bytes_done + live

    @property
    def bytes_copied(self) -> int:
        """Return body bytes copied after the kernel handed them over (copy budget numerator).

        Every copy happens in a consumer (the demuxer or the raw consumer): bytes that
        shared a scratch read with the response head or a chunk-size line are copied
        into it once, and the demuxer counts its own copies.
        """
        live = self._session.bytes_copied if self._session is not None else 0
        return self._copied_done + live

    def fps_in(self, now_ns: int | None = None) -> float:
        """Return the arrival rate over the last ``fps_window`` seconds."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        recent = [t for t in self._arrivals if now_ns - t <= self._fps_window_ns]
        if len(recent) < 2 or recent[-1] == recent[0]:
            return 0.0
        return (len(recent) - 1) * NS_PER_SECOND / (recent[-1] - recent[0])

    @property
    def fps(self) -> int | None:
        """Return the rate asked upstream (None: the camera's default)."""
        return self._fps

    def set_fps(self, fps: int | None) -> None:
        """Ask the camera for ``fps`` (None: the configured rate), reconnecting at once if live.

        The switch is not a failure: no backoff, no error, not counted in ``reconnects``.
        A switch while connecting or backing off applies to the next connection; one that
        leaves the request unchanged (kinds without a rate parameter) reconnects nothing.
        Callers debounce (the upstream rate follows the clients, which come and go).
        """
        fps = self._configured_fps if fps is None else fps
        if fps == self._fps:
            return
        self._fps = fps
        target = self._base_target.with_target(stream_path(self.camera, self.kind, fps))
        if target == self._target:
            return
        self._target = target
        self.log.info("asking the camera for %s fps", "its default" if fps is None else fps)
        if self._session is not None:
            self._retarget = True
            self._session.abort(UpstreamError("frame rate changed"))

    async def start(self) -> None:
        """Start ingesting in the background."""
        self.resume()

    def resume(self) -> None:
        """Start ingesting in the background unless running (an on-demand camera's consumer)."""
        if self._task is None:
            self._task = asyncio.create_task(
                self._run(), name=f"ingest {self.camera.name} {self.kind.value}"
            )

    def pause(self) -> None:
        """Close the connection now and stay idle until ``resume`` (nobody consumes the stream)."""
        task, self._task = self._task, None
        if task is None:
            return
        if self._session is not None:
            # At once: no frame may arrive after the caller dropped the source's frames.
            self._session.abort(UpstreamError("no consumers"))
        task.cancel()
        self._paused.add(task)
        task.add_done_callback(self._paused.discard)
        self._set_state(StreamState.IDLE)

    async def stop(self) -> None:
        """Stop ingesting and close the connection."""
        self.pause()
        for task in tuple(self._paused):
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._set_state(StreamState.IDLE)

    def snapshot(self) -> dict[str, object]:
        """Return the ``/api/cameras`` per-stream dict (credentials redacted)."""
        return {
            "state": self.state.value,
            "fps_in": round(self.fps_in(), 2),
            "bytes_in": self.bytes_in,
            "frames_in": self.frames_in,
            "frames_dropped": self.frames_dropped,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "content_type": self.content_type,
            "boundary": self.boundary,
            "resolution": "{}x{}".format(*self.resolution) if self.resolution else None,
            "codec": self.codec,
            "url": self.url,
        }

    # -- supervision --------------------------------------------------------------------

    def _set_state(self, state: StreamState) -> None:
        if state is not self.state:
            self.state = state
            self.history.append((self._clock.monotonic(), state))

    async def _run(self) -> None:
        self.outages.stopped()  # a new run: live again only once frames come
        failed = False
        while True:
            if failed:
                self.reconnects += 1
            self._set_state(StreamState.CONNECTING)
            try:
                failure, message = await self._attempt()
            except Exception as exc:
                # A bug must not end ingest for good: report it, back off, try again. The
                # traceback once per kind of bug: it repeats on every attempt.
                name = type(exc).__name__
                if name not in self._bugs_logged and len(self._bugs_logged) < 16:
                    self._bugs_logged.add(name)
                    self.log.exception("ingest failed unexpectedly")
                failure, message = Failure.PROTOCOL, f"internal error: {name}"
            if self._retarget:
                self._retarget = False  # set_fps closed it: reconnect now, nothing failed
                failed = False
                continue
            await self._back_off(failure, message)
            failed = True

    async def _attempt(self) -> tuple[Failure, str]:
        self._retarget = False  # a stale flag (set_fps, then stop) must not skip a backoff
        target = self._target
        session = Session(
            self.kind,
            target,
            self,
            auth=self._auth,
            connect_timeout=self.connect_timeout,
            stamper=self.stamper,
            clock=self._clock,
        )
        refused = await session.open()
        if refused is not None:
            return refused
        self._session = session
        try:
            if target != self._target:
                self._retarget = True  # set_fps while connecting: this one asked the old rate
                return Failure.UPSTREAM, "frame rate changed"
            self._went_live(session)
            return await session.watch(self.stall_timeout)
        finally:
            session.abort(UpstreamError("stopped"))
            self._bytes_done += session.bytes_in
            self._copied_done += session.bytes_copied
            self._session = None

    def _went_live(self, session: Session) -> None:
        self.content_type = session.content_type
        self.boundary = session.boundary
        self.policy.connected(self._clock.monotonic())
        self._set_state(StreamState.LIVE)

    async def _back_off(self, failure: Failure, message: str) -> None:
        clock = self._clock
        now = clock.monotonic()
        delay = self.policy.failed(now, failure)
        self.last_error = redact(message)
        self._set_state(StreamState.FAILED if failure is Failure.AUTH else StreamState.BACKOFF)
        # One line when the stream goes down (or drops), one per new problem, then the
        # reminders: a camera refusing our password every minute must not flood the log.
        self._log(self.outages.failed(now, self.last_error, delay), logging.WARNING)
        while True:
            due = self.policy.get_timer()
            if due is None:
                return
            reminder = self.outages.get_timer()
            wake = due if reminder is None else min(due, reminder)
            await clock.sleep(max(wake - clock.monotonic(), 0.0))
            now = clock.monotonic()
            self._log(self.outages.handle_timer(now), logging.WARNING)
            if self.policy.handle_timer(now):
                return

    def _log(self, line: str | None, level: int) -> None:
        if line is not None:
            self.log.log(level, "%s", line)

    # -- the session's frame sink ---------------------------------------------------------

    def frame_received(self, frame: Frame, pictures: int) -> None:
        """Count a frame, keep it as ``latest`` and pass it to ``on_frame``."""
        # An MPEG-2 read is a run of bytes: frames_in and fps_in count the pictures in it.
        self.frames_in += pictures
        if pictures and self.state is StreamState.LIVE:  # not in the read with the head
            line = self.outages.live(self._clock.monotonic(), str(self.content_type))
            if line is not None:
                self.log.info("%s", line)
        self._arrivals.extend([frame.received_ns] * pictures)
        self.latest = frame
        if self.on_frame is not None:
            try:
                self.on_frame(frame)
            except Exception as exc:
                self.callback_errors += 1
                if self.callback_errors == 1:  # once: a broken callback must not flood the log
                    self.log.error("on_frame callback failed: %r", exc, exc_info=exc)

    def frame_dropped(self) -> None:
        """Count a part the demuxer dropped."""
        self.frames_dropped += 1

    def described(self, codec: str, resolution: tuple[int, int] | None) -> None:
        """Take the codec and, when found, the resolution."""
        self.codec = codec
        self.resolution = resolution or self.resolution
