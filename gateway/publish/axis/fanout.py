"""One camera's MJPEG fan-out: the source stream, shared variants, the upstream rate.

The ingest's ``on_frame`` feeds ``CameraFanout.on_frame``: the source hub ``Stream``
(pass-through clients) and the ``VariantPool`` (transcoded variants, each its own hub
``Stream`` sharing the app's ``EgressBudget``). Whenever the clients' wishes change, the
rate asked of the camera follows (``UpstreamRate``: raise at once, lower later).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.config import CameraConfig
from gateway.hub import EgressBudget, Stream, Subscription
from gateway.media import Frame, StreamKind
from gateway.transcode import ImageParams, VariantPool

from .options import PartCache
from .upstream import UpstreamRate

if TYPE_CHECKING:
    from gateway.ingest import CameraStream

    from .egress import ClientEgress

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AxisSettings:
    """Timing knobs of the Axis endpoints (tests shorten them)."""

    #: Seconds a client may take to receive a frame before it is closed.
    write_deadline: float = 30.0
    #: Seconds a snapshot waits for the camera's first image before 503.
    snapshot_wait: float = 2.0
    #: Seconds the upstream rate stays up after the clients needing it left.
    upstream_lower_after: float = 5.0
    #: Seconds an unused variant keeps its transcoder.
    variant_linger: float = 2.0
    #: Distinct transcoded variants per camera.
    max_variants: int = 8


class CameraFanout:
    """Fan-out of one camera's MJPEG stream to Axis clients."""

    def __init__(
        self,
        camera: CameraConfig,
        *,
        budget: EgressBudget,
        max_clients: int,
        settings: AxisSettings,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """Create the source stream and the variant pool (nothing runs until frames come)."""
        self.camera = camera
        self.max_clients = max_clients
        self.settings = settings
        self._budget = budget
        self._loop = loop
        self.source = Stream(
            StreamKind.MJPEG,
            name=camera.name,
            max_subscribers=max_clients,
            budget=budget,
            on_wanted_fps=self._wanted_changed,
        )
        self.variants: dict[ImageParams, Stream] = {}
        self.pool = VariantPool(
            self._variant_sink,
            loop=loop,
            linger=settings.variant_linger,
            max_variants=settings.max_variants,
            on_stopped=self._variant_stopped,
        )
        self.rate = UpstreamRate(camera.fps, lower_after=settings.upstream_lower_after)
        #: The ingest feeding ``on_frame`` (set by the app), told the upstream rate.
        self.ingest: CameraStream | None = None
        #: Socket side of each live MJPEG client, for the API.
        self.egress: dict[Subscription, ClientEgress] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._parts: dict[tuple[Stream, bool], PartCache] = {}

    def on_frame(self, frame: Frame) -> None:
        """Publish one camera frame to pass-through clients and to the variants in use."""
        self.source.publish(frame)
        self.pool.submit(frame)

    @property
    def source_size(self) -> tuple[int, int] | None:
        """Return the camera's image size once known."""
        return self.ingest.resolution if self.ingest is not None else None

    def streams(self) -> Iterator[Stream]:
        """Yield the source stream and every variant stream."""
        yield self.source
        yield from tuple(self.variants.values())

    def part_cache(self, stream: Stream, showlength: bool) -> PartCache:
        """Return the part cache shared by ``stream``'s clients without ``deltatime``."""
        cache = self._parts.get((stream, showlength))
        if cache is None:
            cache = self._parts[stream, showlength] = PartCache(showlength)
        return cache

    def client_count(self) -> int:
        """Return the MJPEG clients of this camera over all its streams."""
        return sum(len(stream) for stream in self.streams())

    def clients(self) -> list[dict[str, object]]:
        """Return the ``/api/cameras`` ``clients`` entries (DESIGN §5) plus socket state."""
        out: list[dict[str, object]] = []
        labelled = [("passthrough", self.source)]
        labelled += [(params.describe(), stream) for params, stream in self.variants.items()]
        for label, stream in labelled:
            for sub, entry in zip(stream, stream.snapshot(), strict=True):
                entry["variant"] = label
                egress = self.egress.get(sub)
                if egress is not None:
                    buffered = egress.buffered()
                    entry["buffered_bytes"] = buffered
                    entry["kernel_queued_bytes"] = egress.kernel_queued()
                    entry["frames_held"] = (buffered > 0) + (sub.pending is not None)
                out.append(entry)
        return out

    async def aclose(self) -> None:
        """End every client and stop the variants."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.source.close()
        await self.pool.aclose()
        for stream in tuple(self.variants.values()):
            stream.close()
        self.variants.clear()
        self._parts.clear()

    # -- variants ------------------------------------------------------------------------

    def _variant_sink(self, params: ImageParams) -> Callable[[Frame], None]:
        stream = Stream(
            StreamKind.MJPEG,
            name=f"{self.camera.name} {params.describe()}",
            max_subscribers=self.max_clients,
            budget=self._budget,
            on_wanted_fps=self._wanted_changed,
        )
        self.variants[params] = stream

        def publish(frame: Frame) -> None:
            # A worker may finish a frame after its variant stopped.
            if not stream.closed:
                stream.publish(frame)

        return publish

    def _variant_stopped(self, params: ImageParams) -> None:
        stream = self.variants.pop(params, None)
        if stream is not None:
            stream.close()
            for showlength in (False, True):
                self._parts.pop((stream, showlength), None)
        self.update_rate()

    # -- upstream rate -------------------------------------------------------------------

    def _wanted_changed(self, _: float | None) -> None:
        self.update_rate()

    def update_rate(self) -> None:
        """Combine every stream's wish and tell the ingest if the upstream rate moves."""
        wanted: float | None = None
        clients = False
        for stream in self.streams():
            if not len(stream):
                continue
            if stream.wanted_fps is None:
                wanted, clients = None, True
                break
            wanted = stream.wanted_fps if wanted is None else max(wanted, stream.wanted_fps)
            clients = True
        if self.rate.update(wanted, clients, self._loop.time()):
            self._apply()
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.rate.get_timer()
        if due is not None:
            self._timer = self._loop.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.rate.handle_timer(self._loop.time()):
            self._apply()
        self._arm()

    def _apply(self) -> None:
        if self.ingest is not None:
            self.ingest.set_fps(self.rate.current)
