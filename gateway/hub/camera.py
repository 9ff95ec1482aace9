"""One camera's media: its sources, the rate it asks of the camera, and its renditions.

Every publisher (Axis, fMP4, LL-HLS, WebRTC) reads a camera through this one object,
as an equal (DESIGN §2). The ingest feeds ``on_frame(kind)``; each frame goes into its
source (MJPEG: a latest-wins ``Stream``; MPEG-2 and audio: a ``Ring`` with cut points)
and then to the producers fed from that source (JPEG variants, the H.264 encode, the
audio decoder). Renditions are asked for by ``RenditionKey`` and made by the kind's
factory, which the app supplies from ``gateway/transcode`` (the hub imports no codec).

The rate asked of the camera follows every reader of its MJPEG stream: pass-through
clients, JPEG variants and encoders alike (``UpstreamRate``: raise at once, lower later).

An on-demand camera's streams follow their consumers (``SourceDemand``): a source's
consumers are its subscribers, the readers' claims on the renditions made from it, and
``hold`` (a snapshot waiting for a frame). The first opens the upstream connection; it
closes ``idle_seconds`` after the last left, and the source forgets its frames, so the
next reader waits for a fresh one instead of getting a picture from long ago.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.config import CameraConfig
from gateway.hub.demand import SourceDemand
from gateway.hub.egress import EgressBudget
from gateway.hub.membership import Membership
from gateway.hub.renditions import Renditions, RenditionSpec
from gateway.hub.ring import Ring
from gateway.hub.stream import Stream
from gateway.hub.tally import ClientTally
from gateway.hub.upstream import UpstreamRate
from gateway.media import NS_PER_SECOND, Frame, StreamKind

_log = logging.getLogger(__name__)

#: Receives the frames of one source (a producer's ``submit``).
Feed = Callable[[Frame], None]


class Upstream(Protocol):
    """What the hub needs of a camera stream's ingest."""

    @property
    def resolution(self) -> tuple[int, int] | None:
        """Return the camera's picture size once known."""
        ...

    def set_fps(self, fps: int | None) -> None:
        """Ask the camera for ``fps`` (None: the configured or default rate)."""

    def resume(self) -> None:
        """Connect in the background unless connected or connecting (a consumer came)."""

    def pause(self) -> None:
        """Close the connection now and stay idle until ``resume`` (nobody consumes it)."""


class Hold(Membership):
    """A consumer of a camera source that is no subscriber (a snapshot waiting for a frame)."""

    __slots__ = ("_media", "kind")

    def __init__(self, media: CameraMedia, kind: StreamKind) -> None:
        """Count as a consumer of ``kind`` until closed (``CameraMedia.hold`` makes these)."""
        self._media: CameraMedia | None = media
        self.kind = kind

    def close(self) -> None:
        """Stop consuming; idempotent."""
        media, self._media = self._media, None
        if media is not None:
            media._hold(self.kind, -1)


@dataclass(frozen=True, slots=True)
class MediaSettings:
    """Bounds and timings of a camera's media (the app's limits; tests shorten them)."""

    #: Clients per camera source.
    max_clients: int = 500
    #: Seconds the upstream rate stays up after the readers needing it left.
    upstream_lower_after: float = 5.0
    #: Bytes the MPEG-2 prebuffer holds at most, whatever its seconds say.
    mpeg2_max_bytes: int = 64 * 2**20
    #: Seconds and bytes of audio parts held (every part is a cut point).
    audio_seconds: float = 2.0
    audio_max_bytes: int = 2 * 2**20


#: Builds the rendition table of one camera (the app's, from ``gateway/transcode``).
SpecTable = Callable[["CameraMedia"], Mapping[str, RenditionSpec]]


class CameraMedia:
    """The sources, upstream rate and renditions of one camera."""

    def __init__(
        self,
        camera: CameraConfig,
        *,
        loop: asyncio.AbstractEventLoop,
        settings: MediaSettings | None = None,
        budget: EgressBudget | None = None,
        specs: SpecTable | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Create the camera's sources (nothing runs until frames come).

        ``specs`` builds the table of renditions the camera can make; ``clock`` (seconds,
        default ``loop.time``) times their linger and an on-demand camera's idle close.
        """
        self.camera = camera
        self.settings = settings = settings or MediaSettings()
        self.budget = budget
        #: The event loop everything of this camera runs on (producers deliver to it).
        self.loop = loop
        self._clock = clock or loop.time
        self._closed = False
        #: Every reader of the camera's sources and renditions, for ``/metrics``.
        self.tally = ClientTally()
        self.mjpeg: Stream | None = None
        self.mpeg2: Ring | None = None
        self.audio: Ring | None = None
        if camera.mjpeg:
            self.mjpeg = self.make_stream(camera.name, on_members=self._consumers_changed)
        if camera.mpeg2:
            self.mpeg2 = Ring(
                StreamKind.MPEG2,
                name=camera.name,
                seconds=camera.mpeg2_prebuffer_seconds,
                max_bytes=settings.mpeg2_max_bytes,
                max_subscribers=settings.max_clients,
                on_members=self._consumers_changed,
                tally=self.tally,
            )
        if camera.audio:
            self.audio = Ring(
                StreamKind.AUDIO,
                name=camera.name,
                seconds=settings.audio_seconds,
                max_bytes=settings.audio_max_bytes,
                max_subscribers=settings.max_clients,
                on_members=self._consumers_changed,
                tally=self.tally,
            )
        #: Which sources the camera has.
        self.kinds = tuple(kind for kind in StreamKind if self.source(kind) is not None)
        #: The on-demand camera's open/close policy (None: the streams always run).
        self.demand: SourceDemand | None = None
        if camera.on_demand:
            self.demand = SourceDemand(self.kinds, idle_seconds=camera.idle_seconds)
        self._holds: dict[StreamKind, int] = dict.fromkeys(StreamKind, 0)
        self._idle_timer: asyncio.TimerHandle | None = None
        #: Each source's ingest, for the upstream rate and the picture size.
        self.upstreams: dict[StreamKind, Upstream] = {}
        self._feeds: dict[StreamKind, dict[Feed, None]] = {kind: {} for kind in StreamKind}
        self.rate = UpstreamRate(camera.fps, lower_after=settings.upstream_lower_after)
        self._rate_timer: asyncio.TimerHandle | None = None
        self.renditions = Renditions(
            {} if specs is None else specs(self),
            clock=self._clock,
            on_change=self.update_rate,
            on_claims=self._consumers_changed,
        )

    # -- sources -----------------------------------------------------------------------

    def make_stream(self, name: str, *, on_members: Callable[[], None] | None = None) -> Stream:
        """Return a latest-wins stream under this camera's client bound and egress budget."""
        return Stream(
            StreamKind.MJPEG,
            name=name,
            max_subscribers=self.settings.max_clients,
            budget=self.budget,
            on_wanted_fps=self._wanted_changed,
            on_members=on_members,
            tally=self.tally,
        )

    def source(self, kind: StreamKind) -> Stream | Ring | None:
        """Return the source of ``kind``, or None: the camera does not ingest it."""
        if kind is StreamKind.MJPEG:
            return self.mjpeg
        return self.mpeg2 if kind is StreamKind.MPEG2 else self.audio

    async def produced(self, kind: StreamKind, within: float) -> bool:
        """Return True once ``kind``'s source holds a frame (at once if it does); False
        after ``within`` seconds, at close, or if the camera has no such source."""
        source = self.source(kind)
        try:
            async with asyncio.timeout(within):
                if isinstance(source, Stream):
                    return await source.first_frame() is not None
                while source is not None and source.newest is None:
                    if source.closed:
                        return False
                    # Shared by every waiter: a timeout here must not cancel it for the others.
                    await asyncio.shield(source.wait_for(cut=False))
        except TimeoutError:
            return False
        return source is not None

    def on_frame(self, kind: StreamKind) -> Feed:
        """Return what the ingest of ``kind`` calls with each frame."""
        source = self.source(kind)
        if source is None:
            raise ValueError(f"camera {self.camera.name} has no {kind.value} source")
        publish = source.publish
        feeds = self._feeds[kind]

        def on_frame(frame: Frame) -> None:
            publish(frame)
            for feed in tuple(feeds):
                feed(frame)

        return on_frame

    def feed(self, kind: StreamKind, consumer: Feed) -> Callable[[], None]:
        """Send ``kind``'s frames to ``consumer`` from now on; return what stops it."""
        feeds = self._feeds[kind]
        feeds[consumer] = None

        def stop() -> None:
            feeds.pop(consumer, None)

        return stop

    def attach(self, kind: StreamKind, upstream: Upstream) -> None:
        """Register the ingest of ``kind`` (told the upstream rate; on demand, when to run)."""
        self.upstreams[kind] = upstream
        if self.demand is not None and self.demand.is_open(kind):
            upstream.resume()

    @property
    def source_size(self) -> tuple[int, int] | None:
        """Return the camera's MJPEG picture size once known."""
        upstream = self.upstreams.get(StreamKind.MJPEG)
        return None if upstream is None else upstream.resolution

    # -- demand ------------------------------------------------------------------------

    def consumers(self) -> dict[StreamKind, int]:
        """Return each source's consumers: subscribers, readers of its renditions, holds."""
        counts = self.renditions.consumers()
        for kind in self.kinds:
            readers = len(self.source(kind) or ())
            counts[kind] = counts.get(kind, 0) + readers + self._holds[kind]
        return counts

    def hold(self, kind: StreamKind) -> Hold:
        """Count a reader that is no subscriber as a consumer of ``kind`` until closed."""
        self._hold(kind, 1)
        return Hold(self, kind)

    def _hold(self, kind: StreamKind, delta: int) -> None:
        self._holds[kind] += delta
        self._consumers_changed()

    def _consumers_changed(self) -> None:
        """Open the streams of an on-demand camera that gained a consumer; arm the close."""
        if self.demand is None or self._closed:
            return
        for kind in self.demand.update(self.consumers(), self._clock()):
            upstream = self.upstreams.get(kind)
            _log.info("camera %s: %s opened on demand", self.camera.name, kind.value)
            if upstream is not None:
                upstream.resume()
        self._arm_idle()

    def check_idle(self, now: float) -> None:
        """Close the streams nobody consumed for ``idle_seconds`` at ``now`` (the timer's)."""
        if self.demand is None or self._closed:
            return
        closing = self.demand.handle_timer(now)
        for kind in closing:
            idle = self.demand.idle_seconds
            _log.info("camera %s: %s closed, unwatched for %gs", self.camera.name, kind.value, idle)
            upstream = self.upstreams.get(kind)
            if upstream is not None:
                upstream.pause()
            source = self.source(kind)
            if isinstance(source, Stream):
                source.forget()
            elif source is not None:
                source.clear()
        if closing:
            self.renditions.stop_unused()
        self._arm_idle()

    def _arm_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        due = None if self.demand is None else self.demand.get_timer()
        if due is not None and not self._closed:
            delay = max(due - self._clock(), 0.0)
            self._idle_timer = self.loop.call_later(delay, self._on_idle_timer)

    def _on_idle_timer(self) -> None:
        self._idle_timer = None
        self.check_idle(self._clock())

    # -- upstream rate -----------------------------------------------------------------

    def _wanted_changed(self, _: float | None) -> None:
        self.update_rate()

    def update_rate(self) -> None:
        """Combine every MJPEG reader's wish and tell the ingest if the upstream rate moves."""
        wanted: float | None = None
        readers = False
        wishes: list[float | None] = []
        if self.mjpeg is not None and len(self.mjpeg):
            wishes.append(self.mjpeg.wanted_fps)
        for _, rendition, _ in self.renditions.live():
            need = rendition.upstream_fps()
            if need is not None and need[0] is StreamKind.MJPEG:
                wishes.append(need[1])
        for fps in wishes:
            readers = True
            if fps is None:
                wanted = None
                break
            wanted = fps if wanted is None else max(wanted, fps)
        if self.rate.update(wanted, readers, self.loop.time()):
            self._apply()
        self._arm()

    def _arm(self) -> None:
        if self._rate_timer is not None:
            self._rate_timer.cancel()
            self._rate_timer = None
        due = self.rate.get_timer()
        if due is not None:
            self._rate_timer = self.loop.call_at(due, self._on_rate_timer)

    def _on_rate_timer(self) -> None:
        self._rate_timer = None
        if self.rate.handle_timer(self.loop.time()):
            self._apply()
        self._arm()

    def _apply(self) -> None:
        upstream = self.upstreams.get(StreamKind.MJPEG)
        if upstream is not None:
            upstream.set_fps(self.rate.current)

    # -- state -------------------------------------------------------------------------

    def stats(self) -> dict[StreamKind, dict[str, object]]:
        """Return the hub's figures per source, for ``/api`` ``streams``."""
        consumers = self.consumers()
        out: dict[StreamKind, dict[str, object]] = {}
        for kind in self.kinds:
            out[kind] = {"consumers": consumers.get(kind, 0)}
            if self.demand is not None:
                out[kind].update(self.demand.stats(kind))
        if self.mpeg2 is not None:
            ring = self.mpeg2
            out[StreamKind.MPEG2] |= {
                "prebuffer_seconds": round(ring.held_ns / NS_PER_SECOND, 3),
                "prebuffer_bytes": ring.bytes,
                "prebuffer_frames": ring.next_seq - ring.first_seq,
                "prebuffer_limit_seconds": self.camera.mpeg2_prebuffer_seconds,
                "frames_published": ring.frames_published,
                "evicted_frames": ring.evicted_frames,
                "oversize_gops": ring.oversize_gops,
                "truncated_gops": ring.truncated_gops,
                "clients": len(ring),
            }
        if self.audio is not None:
            out[StreamKind.AUDIO] |= {
                "buffer_seconds": round(self.audio.held_ns / NS_PER_SECOND, 3),
                "clients": len(self.audio),
            }
        return out

    async def aclose(self) -> None:
        """End every reader of every source and rendition; stop the producers."""
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._rate_timer is not None:
            self._rate_timer.cancel()
            self._rate_timer = None
        for source in (self.mjpeg, self.mpeg2, self.audio):
            if source is not None:
                source.close()
        for feeds in self._feeds.values():
            feeds.clear()
        await self.renditions.aclose()
