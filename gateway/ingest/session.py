"""One upstream connection of a camera stream: request, response head, body events to frames.

A ``CameraStream`` runs one ``Session`` per connection attempt; the session numbers the
frames of its connection (``seq`` restarts at 0) and hands them to the stream, which
outlives it and keeps the counters.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from gateway.demux.codec import codec_name, jpeg_size, mpeg_video_info
from gateway.demux.http1 import BodyConsumer, ResponseHead
from gateway.demux.mpeg2 import UnitDropped
from gateway.demux.multipart import PartDropped, StreamEnded
from gateway.errors import AuthError, GatewayError, RemoteProtocolError, UpstreamError
from gateway.ingest.auth import Authenticator
from gateway.ingest.backoff import Clock, Failure, StallWatchdog, SystemClock
from gateway.ingest.connection import IngestProtocol, Target, open_stream
from gateway.ingest.kinds import (
    ACCEPT_HEADERS,
    FRAME_DATA,
    STAMPERS,
    TIME_BASES,
    FrameData,
    Stamper,
    make_consumer,
)
from gateway.media import Frame, StreamKind

#: Reads of an MPEG-2 stream scanned for a sequence header before giving up.
MAX_SCANS = 64


def failure_of(exc: BaseException) -> Failure:
    """Return the failure class of an error that ended an attempt."""
    if isinstance(exc, AuthError):
        return Failure.AUTH
    if isinstance(exc, UpstreamError):
        return Failure.UPSTREAM
    if isinstance(exc, RemoteProtocolError):
        return Failure.PROTOCOL
    return Failure.NETWORK


def copied_by(consumer: BodyConsumer | None) -> int:
    """Return the bytes a consumer copied (0 for consumers that do not count)."""
    copied = getattr(consumer, "bytes_copied", 0)
    return copied if isinstance(copied, int) else 0


class FrameSink(Protocol):
    """Where a session's frames go (the ``CameraStream``); called on the loop, must not block."""

    def frame_received(self, frame: Frame, pictures: int) -> None:
        """Take a frame holding ``pictures`` pictures (what ``frames_in`` counts)."""

    def frame_dropped(self) -> None:
        """Count a part the consumer dropped (torn JPEG, wrong length)."""

    def described(self, codec: str, resolution: tuple[int, int] | None) -> None:
        """Take the codec and, when found, the resolution of the stream."""


class Session:
    """Open one connection, turn its body's events into frames, and watch it until it ends."""

    def __init__(
        self,
        kind: StreamKind,
        target: Target,
        sink: FrameSink,
        *,
        auth: Authenticator | None = None,
        connect_timeout: float = 10.0,
        stamper: Stamper | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.kind = kind
        #: Where the request goes (before redirects): the stream compares it with its own.
        self.target = target
        self._sink = sink
        self._auth = auth
        self._connect_timeout = connect_timeout
        self._frame_data = FRAME_DATA[kind]
        self._time_base = TIME_BASES[kind]
        # The stream's stamper outlives its sessions (seq 0 tells it a connection is new).
        self._stamper = stamper if stamper is not None else STAMPERS[kind]()
        self._seq = 0
        self._want_description = True
        self._clock = clock or SystemClock()
        #: Armed by ``watch``: frames, not bytes, keep the connection alive.
        self._watchdog: StallWatchdog | None = None
        #: Parts dropped since the last frame (a stall reports them).
        self._dropped = 0
        #: Why the body ended while the connection was open (a close delimiter), if it did.
        self.ended: str | None = None
        #: The streaming connection once ``open`` succeeded.
        self.protocol: IngestProtocol | None = None
        #: The body consumer once ``open`` succeeded.
        self.consumer: BodyConsumer | None = None
        #: The 200 response head once ``open`` succeeded.
        self.head: ResponseHead | None = None

    @property
    def bytes_in(self) -> int:
        """Return bytes read on the streaming connection."""
        return self.protocol.bytes_in if self.protocol is not None else 0

    @property
    def bytes_copied(self) -> int:
        """Return body bytes the consumer copied after the kernel handed them over."""
        return copied_by(self.consumer)

    @property
    def content_type(self) -> str | None:
        """Return the response's ``Content-Type``."""
        return self.head.get("content-type") if self.head is not None else None

    @property
    def boundary(self) -> str | None:
        """Return the multipart boundary the demuxer uses, if any."""
        boundary = getattr(self.consumer, "boundary", None)
        return boundary.decode("latin-1") if isinstance(boundary, bytes) else None

    async def open(self) -> tuple[Failure, str] | None:
        """Connect until a 200 is streaming; return why not, or None once it is."""
        consumer: list[BodyConsumer] = []

        def accept(head: ResponseHead) -> BodyConsumer:
            consumer.append(make_consumer(self.kind, head))
            self.consumer = consumer[0]  # its boundary names a close delimiter in the head's read
            return consumer[0]

        try:
            opened = await open_stream(
                self.target,
                accept,
                self.handle_events,
                auth=self._auth,
                response_timeout=self._connect_timeout,
                accept_header=ACCEPT_HEADERS[self.kind],
                clock=self._clock.monotonic,
            )
        except GatewayError as exc:
            return failure_of(exc), str(exc)
        self.protocol = opened.protocol
        self.consumer = consumer[0]
        self.head = opened.head
        return None

    async def watch(self, stall_timeout: float) -> tuple[Failure, str]:
        """Wait until the connection ends, its body ends, or no frame comes; return why."""
        protocol = self.protocol
        assert protocol is not None, "watch() before open()"
        watchdog = self._watchdog = StallWatchdog(stall_timeout)
        watchdog.start(self._clock.monotonic(), protocol.bytes_in)
        if self.ended is not None:
            protocol.abort(UpstreamError(self.ended))  # it ended in the read with the head
        while not protocol.closed.done():
            now = self._clock.monotonic()
            watchdog.data_received(protocol.last_data, protocol.bytes_in)
            stalled = watchdog.handle_timer(now)
            if stalled is not None:
                return Failure.STALL, stalled + self._dropped_note()
            deadline = watchdog.get_timer()
            assert deadline is not None
            await asyncio.wait([protocol.closed], timeout=max(deadline - now, 0.0))
        if self.ended is not None:
            return Failure.ENDED, self.ended
        error = protocol.closed.result()
        if error is None:
            return Failure.NETWORK, "connection closed by the camera"
        if isinstance(error, GatewayError):
            return failure_of(error), str(error)
        return Failure.NETWORK, f"connection lost: {error}"

    def _dropped_note(self) -> str:
        if not self._dropped:
            return ""
        return f" ({self._dropped} part{'s' if self._dropped > 1 else ''} dropped)"

    def abort(self, error: BaseException) -> None:
        """Drop the streaming connection (if any) at once, recording why."""
        if self.protocol is not None:
            self.protocol.abort(error)

    # -- frames ---------------------------------------------------------------------------

    def handle_events(self, events: list[Any]) -> None:
        """Turn a batch of consumer events into frames for the sink."""
        for event in events:
            if isinstance(event, PartDropped | UnitDropped):
                self._dropped += 1
                self._sink.frame_dropped()
                continue
            if isinstance(event, StreamEnded):
                if event.by_delimiter:
                    self._body_ended()
                continue
            data = self._frame_data(event)
            if data is not None:
                self._deliver(data, event)

    def _body_ended(self) -> None:
        """End the connection: a camera that closed its body and went on sending is frozen."""
        boundary = self.boundary
        self.ended = "the camera ended the stream (close delimiter{})".format(
            f" --{boundary}--" if boundary else ""
        )
        self.abort(UpstreamError(self.ended))

    def _deliver(self, data: FrameData, event: object) -> None:
        received_ns = time.monotonic_ns()
        if data.pictures and self._watchdog is not None:
            self._dropped = 0
            self._watchdog.frame_received(self._clock.monotonic(), self.bytes_in)
        if self._want_description:
            self._want_description = False
            self._describe(data)
        pts = self._stamper.stamp(event, received_ns, new_connection=self._seq == 0)
        frame = Frame(
            payload=data.payload,
            content_type=data.content_type,
            seq=self._seq,
            pts=pts,
            time_base=self._time_base,
            received_ns=received_ns,
            headers=data.headers,
            cut=data.cut,
            leading=data.leading,
            continued=data.continued,
        )
        self._seq += 1
        self._sink.frame_received(frame, data.pictures)

    def _describe(self, data: FrameData) -> None:
        media = data.media_type
        if media == "image/jpeg":
            self._sink.described("JPEG", jpeg_size(data.payload))
        elif self.kind is StreamKind.MPEG2:
            info = mpeg_video_info(data.payload)
            if info is not None:
                self._sink.described(*info)
            elif self._seq < MAX_SCANS:
                self._want_description = True  # the sequence header may come later
        else:
            self._sink.described(codec_name(media), None)
