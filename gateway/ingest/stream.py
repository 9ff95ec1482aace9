"""CameraStream: one upstream stream per camera, supervised (reconnect, stall, backoff)."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, MutableMapping
from fractions import Fraction
from typing import Any
from urllib.parse import urlencode

from gateway.config import CameraConfig
from gateway.demux.codec import codec_name, jpeg_size, mpeg_video_info
from gateway.demux.http1 import BodyConsumer, ResponseHead
from gateway.demux.multipart import MultipartDemuxer, PartDropped, PartReceived
from gateway.errors import AuthError, GatewayError, RemoteProtocolError, UpstreamError
from gateway.ingest.auth import Authenticator
from gateway.ingest.backoff import Failure, ReconnectPolicy, StallWatchdog
from gateway.ingest.connection import IngestProtocol, Target, open_stream
from gateway.ingest.raw import PICTURE_START, RawConsumer, RawReceived
from gateway.ingest.redact import redact, register_secrets
from gateway.media import NS_PER_SECOND, VIDEO_TIME_BASE, Frame, Payload, StreamKind, StreamState

#: Upstream paths per stream kind (VAPIX §5.2.6, §5.3.1, §5.5.1).
STREAM_PATHS = {
    StreamKind.MJPEG: "/axis-cgi/mjpg/video.cgi",
    StreamKind.MPEG2: "/axis-cgi/mpeg2/video.cgi",
    StreamKind.AUDIO: "/axis-cgi/audio/receive.cgi",
}
#: What each kind asks for in ``Accept``.
ACCEPT_HEADERS = {
    StreamKind.MJPEG: "multipart/x-mixed-replace, image/jpeg;q=0.5",
    StreamKind.MPEG2: "video/mpeg, video/mp2t;q=0.5",
    StreamKind.AUDIO: "multipart/x-mixed-replace, audio/*;q=0.5",
}
#: G.726 and G.711 run at 8 kHz: audio pts count samples (STYLE.md §10).
AUDIO_TIME_BASE = Fraction(1, 8000)


def stream_path(camera: CameraConfig, kind: StreamKind, fps: int | None) -> str:
    """Return the upstream path and query for one stream of ``camera``."""
    query: list[tuple[str, str]] = []
    if kind is not StreamKind.AUDIO and camera.channel is not None:
        query.append(("camera", str(camera.channel)))
    if kind is StreamKind.MJPEG:
        if camera.resolution is not None:
            query.append(("resolution", "{}x{}".format(*camera.resolution)))
        if fps is not None:
            query.append((camera.rate_param.value, str(fps)))
    path = STREAM_PATHS[kind]
    return f"{path}?{urlencode(query)}" if query else path


def make_consumer(kind: StreamKind, head: ResponseHead) -> BodyConsumer:
    """Return the body consumer for a 200 response, or raise for content we cannot ingest."""
    content_type = head.get("content-type", "") or ""
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("multipart/") and kind is not StreamKind.MPEG2:
        return MultipartDemuxer(content_type, check_jpeg=kind is StreamKind.MJPEG)
    if kind is StreamKind.MPEG2 and media in ("video/mpeg", "video/mp2t", "video/mp2p"):
        return RawConsumer(media, marker=PICTURE_START)
    if kind is StreamKind.AUDIO and media.startswith("audio/"):
        return RawConsumer(media)
    raise UpstreamError(f"unexpected content type {media or '(none)'}")


def _copied(consumer: BodyConsumer) -> int:
    copied = getattr(consumer, "bytes_copied", 0)
    return copied if isinstance(copied, int) else 0


def _failure_of(exc: BaseException) -> Failure:
    if isinstance(exc, AuthError):
        return Failure.AUTH
    if isinstance(exc, UpstreamError):
        return Failure.UPSTREAM
    if isinstance(exc, RemoteProtocolError):
        return Failure.PROTOCOL
    return Failure.NETWORK


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
    ) -> None:
        """Prepare (but do not start) ingest of ``kind`` from ``camera``.

        :param camera: the camera's configuration (credentials, channel, rate, stall timeout).
        :param kind: which stream to ingest.
        :param base_url: overrides ``camera.source`` (the in-process simulator's URL).
        :param on_frame: called synchronously for every frame; must not block.
        :param logger: parent logger (default ``gateway.ingest``).
        :param fps: rate asked upstream (default ``camera.fps``).
        :param policy: reconnect policy (tests pass short delays).
        :param stall_timeout: seconds without a byte before reconnecting
            (default ``camera.stall_timeout``).
        :param connect_timeout: seconds allowed for connect plus response head.
        :param fps_window: seconds of frame arrivals ``fps_in`` is computed over.
        """
        self.camera = camera
        self.kind = kind
        self.on_frame = on_frame
        base = base_url or camera.source
        self._fps = fps if fps is not None else camera.fps
        self._base_target = Target.parse(base)
        self._target = self._base_target.with_target(stream_path(camera, kind, self._fps))
        self._retarget = False
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
        self.stall_timeout = camera.stall_timeout if stall_timeout is None else stall_timeout
        self.connect_timeout = connect_timeout
        self._time_base = AUDIO_TIME_BASE if kind is StreamKind.AUDIO else VIDEO_TIME_BASE
        self._fps_window_ns = int(fps_window * NS_PER_SECOND)
        self._arrivals: collections.deque[int] = collections.deque(maxlen=1024)
        self._task: asyncio.Task[None] | None = None
        self._protocol: IngestProtocol | None = None
        self._logged_error: str | None = None
        self._seq = 0
        self._want_resolution = True
        self._bytes_done = 0
        #: Current state.
        self.state = StreamState.IDLE
        #: The newest frame, for snapshots and new clients.
        self.latest: Frame | None = None
        self.frames_in = 0
        #: Exceptions raised by ``on_frame`` (logged once).
        self.callback_errors = 0
        self._counts_pictures = kind is StreamKind.MPEG2
        self.frames_dropped = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self.content_type: str | None = None
        self.boundary: str | None = None
        self.resolution: tuple[int, int] | None = None
        self.codec: str | None = None
        self._copied_done = 0
        self._consumer: BodyConsumer | None = None
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
        live = self._protocol.bytes_in if self._protocol is not None else 0
        return self._bytes_done + live

    @property
    def bytes_copied(self) -> int:
        """Return body bytes copied after the kernel handed them over (copy budget numerator).

        Every copy happens in a consumer (the demuxer or the raw consumer): bytes that
        shared a scratch read with the response head or a chunk-size line are copied
        into it once, and the demuxer counts its own copies.
        """
        live = _copied(self._consumer) if self._consumer is not None else 0
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
        """Ask the camera for ``fps`` from now on, reconnecting at once if live.

        The switch is not a failure: no backoff, no error. Callers debounce (the
        upstream rate follows the clients, which come and go).
        """
        if fps == self._fps:
            return
        self._fps = fps
        self._target = self._base_target.with_target(stream_path(self.camera, self.kind, fps))
        self.log.info("asking the camera for %s fps", "its default" if fps is None else fps)
        if self._protocol is not None:
            self._retarget = True
            self._protocol.abort(UpstreamError("frame rate changed"))

    async def start(self) -> None:
        """Start ingesting in the background."""
        if self._task is None:
            self._task = asyncio.create_task(
                self._run(), name=f"ingest {self.camera.name} {self.kind.value}"
            )

    async def stop(self) -> None:
        """Stop ingesting and close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
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
            self.history.append((time.monotonic(), state))

    async def _run(self) -> None:
        first = True
        while True:
            if not first:
                self.reconnects += 1
            first = False
            self._set_state(StreamState.CONNECTING)
            try:
                failure, message = await self._attempt()
            except Exception as exc:
                # A bug must not end ingest for good: report it, back off, try again.
                self.log.exception("ingest failed unexpectedly")
                failure, message = Failure.PROTOCOL, f"internal error: {type(exc).__name__}"
            if self._retarget:
                self._retarget = False  # set_fps closed it: reconnect now, nothing failed
                continue
            await self._back_off(failure, message)

    async def _attempt(self) -> tuple[Failure, str]:
        consumer: list[BodyConsumer] = []

        def accept(head: ResponseHead) -> BodyConsumer:
            consumer.append(make_consumer(self.kind, head))
            return consumer[0]

        self._seq = 0
        self._want_resolution = True
        target = self._target
        try:
            opened = await open_stream(
                target,
                accept,
                self._handle_events,
                auth=self._auth,
                response_timeout=self.connect_timeout,
                accept_header=ACCEPT_HEADERS[self.kind],
            )
        except GatewayError as exc:
            return _failure_of(exc), str(exc)
        self._protocol = protocol = opened.protocol
        self._consumer = consumer[0]
        try:
            if target is not self._target:
                self._retarget = True  # set_fps while connecting: this one asked the old rate
                return Failure.UPSTREAM, "frame rate changed"
            self._went_live(opened.head, consumer[0])
            return await self._watch(protocol)
        finally:
            protocol.abort(UpstreamError("stopped"))
            self._bytes_done += protocol.bytes_in
            self._copied_done += _copied(consumer[0])
            self._protocol = None
            self._consumer = None

    def _went_live(self, head: ResponseHead, consumer: BodyConsumer) -> None:
        self.content_type = head.get("content-type")
        boundary = getattr(consumer, "boundary", None)
        self.boundary = boundary.decode("latin-1") if isinstance(boundary, bytes) else None
        self.policy.connected(time.monotonic())
        self._set_state(StreamState.LIVE)
        if self._logged_error is not None or self.reconnects == 0:
            self.log.info("live (%s)", self.content_type)
        self._logged_error = None

    async def _watch(self, protocol: IngestProtocol) -> tuple[Failure, str]:
        """Wait until the connection ends or stalls."""
        watchdog = StallWatchdog(self.stall_timeout)
        while not protocol.closed.done():
            watchdog.data_received(protocol.last_data)
            now = time.monotonic()
            if watchdog.handle_timer(now):
                return Failure.STALL, f"stalled: no data for {self.stall_timeout:g} s"
            deadline = watchdog.get_timer()
            assert deadline is not None
            await asyncio.wait([protocol.closed], timeout=max(deadline - now, 0.0))
        error = protocol.closed.result()
        if error is None:
            return Failure.NETWORK, "connection closed by the camera"
        if isinstance(error, GatewayError):
            return _failure_of(error), str(error)
        return Failure.NETWORK, f"connection lost: {error}"

    async def _back_off(self, failure: Failure, message: str) -> None:
        now = time.monotonic()
        delay = self.policy.failed(now, failure)
        self.last_error = redact(message)
        self._set_state(StreamState.FAILED if failure is Failure.AUTH else StreamState.BACKOFF)
        if self.last_error != self._logged_error:
            # One line per change of problem: a camera refusing our password every
            # minute must not flood the log (or look like a new event each time).
            self._logged_error = self.last_error
            self.log.warning("%s; retrying in %.1f s", self.last_error, delay)
        while True:
            due = self.policy.get_timer()
            if due is None:
                return
            await asyncio.sleep(max(due - time.monotonic(), 0.0))
            if self.policy.handle_timer(time.monotonic()):
                return

    # -- frames ---------------------------------------------------------------------------

    def _handle_events(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, PartReceived | RawReceived):
                self._deliver(event)
            elif isinstance(event, PartDropped):
                self.frames_dropped += 1

    def _deliver(self, event: PartReceived | RawReceived) -> None:
        content_type: str = event.content_type or _DEFAULT_TYPES[self.kind]
        media = content_type.split(";", 1)[0].strip().lower()
        if not media.startswith(_FRAME_TYPES[self.kind]):
            return  # e.g. a text part in a video stream: surfaced by the demuxer, not a frame
        payload: Payload = event.payload
        received_ns = time.monotonic_ns()
        if self._want_resolution:
            self._want_resolution = False
            self._inspect(media, payload)
        tb = self._time_base
        frame = Frame(
            payload=payload,
            content_type=content_type,
            seq=self._seq,
            pts=received_ns * tb.denominator // (tb.numerator * NS_PER_SECOND),
            time_base=tb,
            received_ns=received_ns,
            headers=() if isinstance(event, RawReceived) else tuple(event.headers),
        )
        self._seq += 1
        # An MPEG-2 read is a run of bytes: frames_in and fps_in count the pictures in it.
        pictures = event.markers if isinstance(event, RawReceived) and self._counts_pictures else 1
        self.frames_in += pictures
        self._arrivals.extend([received_ns] * pictures)
        self.latest = frame
        if self.on_frame is not None:
            try:
                self.on_frame(frame)
            except Exception as exc:
                self.callback_errors += 1
                if self.callback_errors == 1:  # once: a broken callback must not flood the log
                    self.log.error("on_frame callback failed: %r", exc, exc_info=exc)

    def _inspect(self, media: str, payload: Payload) -> None:
        if media == "image/jpeg":
            self.codec = "JPEG"
            self.resolution = jpeg_size(payload) or self.resolution
        elif self.kind is StreamKind.MPEG2:
            info = mpeg_video_info(payload)
            if info is not None:
                self.codec, self.resolution = info
            elif self._seq < _MAX_SCANS:
                self._want_resolution = True  # the sequence header may come later
        else:
            self.codec = codec_name(media)


#: Reads of an MPEG-2 stream scanned for a sequence header before giving up.
_MAX_SCANS = 64
_DEFAULT_TYPES = {
    StreamKind.MJPEG: "image/jpeg",
    StreamKind.MPEG2: "video/mpeg",
    StreamKind.AUDIO: "audio/32KADPCM",
}
#: Media-type prefixes that count as frames per stream kind.
_FRAME_TYPES = {StreamKind.MJPEG: "image/", StreamKind.MPEG2: "video/", StreamKind.AUDIO: "audio/"}
