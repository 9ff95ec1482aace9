"""One camera's media: its sources, the rate it asks of the camera, and its renditions.

Every publisher (Axis, fMP4, LL-HLS, WebRTC) reads a camera through this one object,
as an equal (DESIGN §2). The ingest feeds ``on_frame(kind)``; each frame goes into its
source (MJPEG: a latest-wins ``Stream``; MPEG-2 and audio: a ``Ring`` with cut points)
and then to the producers fed from that source (JPEG variants, the H.264 encode, the
audio decoder). Renditions are asked for by ``RenditionKey`` and made by the kind's
factory, which the app supplies from ``gateway/transcode`` (the hub imports no codec).

The rate asked of the camera follows every reader of its MJPEG stream: pass-through
clients, JPEG variants and encoders alike (``UpstreamRate``: raise at once, lower later).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.config import CameraConfig
from gateway.hub.egress import EgressBudget
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
        default ``loop.time``) times their linger.
        """
        self.camera = camera
        self.settings = settings = settings or MediaSettings()
        self.budget = budget
        #: The event loop everything of this camera runs on (producers deliver to it).
        self.loop = loop
        #: Every reader of the camera's sources and renditions, for ``/metrics``.
        self.tally = ClientTally()
        self.mjpeg: Stream | None = None
        self.mpeg2: Ring | None = None
        self.audio: Ring | None = None
        if camera.mjpeg:
            self.mjpeg = self.make_stream(camera.name)
        if camera.mpeg2:
            self.mpeg2 = Ring(
                StreamKind.MPEG2,
                name=camera.name,
                seconds=camera.mpeg2_prebuffer_seconds,
                max_bytes=settings.mpeg2_max_bytes,
                max_subscribers=settings.max_clients,
                tally=self.tally,
            )
        if camera.audio:
            self.audio = Ring(
                StreamKind.AUDIO,
                name=camera.name,
                seconds=settings.audio_seconds,
                max_bytes=settings.audio_max_bytes,
                max_subscribers=settings.max_clients,
                tally=self.tally,
            )
        #: Each source's ingest, for the upstream rate and the picture size.
        self.upstreams: dict[StreamKind, Upstream] = {}
        self._feeds: dict[StreamKind, dict[Feed, None]] = {kind: {} for kind in StreamKind}
        self.rate = UpstreamRate(camera.fps, lower_after=settings.upstream_lower_after)
        self._rate_timer: asyncio.TimerHandle | None = None
        self.renditions = Renditions(
            {} if specs is None else specs(self),
            clock=clock or loop.time,
            on_change=self.update_rate,
        )

    # -- sources -----------------------------------------------------------------------

    def make_stream(self, name: str) -> Stream:
        """Return a latest-wins stream under this camera's client bound and egress budget."""
        return Stream(
            StreamKind.MJPEG,
            name=name,
            max_subscribers=self.settings.max_clients,
            budget=self.budget,
            on_wanted_fps=self._wanted_changed,
            tally=self.tally,
        )

    def on_frame(self, kind: StreamKind) -> Feed:
        """Return what the ingest of ``kind`` calls with each frame."""
        source = {StreamKind.MJPEG: self.mjpeg, StreamKind.MPEG2: self.mpeg2}.get(kind, self.audio)
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
        """Register the ingest of ``kind`` (it is told the upstream rate)."""
        self.upstreams[kind] = upstream

    @property
    def source_size(self) -> tuple[int, int] | None:
        """Return the camera's MJPEG picture size once known."""
        upstream = self.upstreams.get(StreamKind.MJPEG)
        return None if upstream is None else upstream.resolution

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
        out: dict[StreamKind, dict[str, object]] = {}
        if self.mpeg2 is not None:
            ring = self.mpeg2
            out[StreamKind.MPEG2] = {
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
            out[StreamKind.AUDIO] = {
                "buffer_seconds": round(self.audio.held_ns / NS_PER_SECOND, 3),
                "clients": len(self.audio),
            }
        return out

    async def aclose(self) -> None:
        """End every reader of every source and rendition; stop the producers."""
        if self._rate_timer is not None:
            self._rate_timer.cancel()
            self._rate_timer = None
        for source in (self.mjpeg, self.mpeg2, self.audio):
            if source is not None:
                source.close()
        for feeds in self._feeds.values():
            feeds.clear()
        await self.renditions.aclose()
