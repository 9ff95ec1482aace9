"""One camera's MJPEG clients: the camera's media read as Axis MJPEG, and their sockets.

The camera's ``CameraMedia`` owns the source stream, the JPEG variants (renditions) and
the upstream rate; this is what the Axis publisher keeps per camera on top: each
client's socket (for the API), the part caches, and the snapshot transcodes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.hub import CameraMedia, RenditionHandle, Stream, Subscription
from gateway.transcode import ImageParams, JpegVariant, SnapshotJobs, jpeg_key

from .options import PartCache

if TYPE_CHECKING:
    from gateway.publish.egress import ClientEgress


@dataclass(frozen=True, slots=True)
class AxisSettings:
    """Timing knobs of the Axis endpoints and the camera media (tests shorten them)."""

    #: Seconds a client may take to receive a frame before it is closed.
    write_deadline: float = 30.0
    #: Seconds a snapshot waits for the camera's first image before 503.
    snapshot_wait: float = 2.0
    #: Seconds a new MJPEG, MPEG-2 or audio client (or a snapshot of an on-demand camera,
    #: which connects first) waits for the camera's first frame before 503.
    stream_wait: float = 5.0
    #: Seconds a new fMP4/HLS viewer waits for the encode's first keyframe before 503.
    keyframe_wait: float = 5.0
    #: Seconds the upstream rate stays up after the clients needing it left.
    upstream_lower_after: float = 5.0
    #: Seconds an unused variant keeps its transcoder.
    variant_linger: float = 2.0
    #: Distinct transcoded variants per camera.
    max_variants: int = 8
    #: Seconds an unused encode (H.264, AAC, Opus) keeps running.
    encode_linger: float = 5.0


class CameraFanout:
    """The Axis MJPEG side of one camera."""

    def __init__(
        self, media: CameraMedia, *, settings: AxisSettings, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Read ``media``'s MJPEG source (the camera must have one)."""
        if media.mjpeg is None:
            raise ValueError(f"camera {media.camera.name} has no MJPEG source")
        self.media = media
        self.camera = media.camera
        self.source: Stream = media.mjpeg
        self.max_clients = media.settings.max_clients
        self.settings = settings
        self.snapshots = SnapshotJobs(loop=loop)
        #: Socket side of each live MJPEG client, for the API.
        self.egress: dict[Subscription, ClientEgress] = {}
        self._parts: dict[tuple[Stream, bool], PartCache] = {}

    @property
    def source_size(self) -> tuple[int, int] | None:
        """Return the camera's image size once known."""
        return self.media.source_size

    def variant(self, params: ImageParams) -> RenditionHandle[JpegVariant]:
        """Return a claim on the shared variant for ``params`` (CapacityError at the bound)."""
        return self.media.renditions.acquire(jpeg_key(params))

    def running_variant(self, params: ImageParams) -> JpegVariant | None:
        """Return the variant for ``params`` if it runs (for snapshots)."""
        return None if params.is_passthrough else self.media.renditions.get(jpeg_key(params))

    def streams(self) -> list[tuple[str, Stream]]:
        """Return the source stream and every variant stream, labelled for the API."""
        out = [("passthrough", self.source)]
        for _, rendition, _ in self.media.renditions.live("jpeg"):
            assert isinstance(rendition, JpegVariant)
            out.append((rendition.params.describe(), rendition.stream))
        return out

    def part_cache(self, stream: Stream, showlength: bool) -> PartCache:
        """Return the part cache shared by ``stream``'s clients without ``deltatime``."""
        cache = self._parts.get((stream, showlength))
        if cache is None:
            # Drop the caches of variants that stopped since.
            self._parts = {k: v for k, v in self._parts.items() if not k[0].closed}
            cache = self._parts[stream, showlength] = PartCache(showlength)
        return cache

    def client_count(self) -> int:
        """Return the MJPEG clients of this camera over all its streams."""
        return sum(len(stream) for _, stream in self.streams())

    def clients(self) -> list[dict[str, object]]:
        """Return the ``/api/cameras`` ``clients`` entries (DESIGN §5) plus socket state."""
        out: list[dict[str, object]] = []
        for label, stream in self.streams():
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

    def stats(self) -> dict[str, object]:
        """Return the snapshot figures for ``/api`` ``streams.mjpeg``."""
        return {"snapshots": self.snapshots.stats()}

    async def aclose(self) -> None:
        """Let the snapshot transcodes in progress finish (the media ends the clients)."""
        await self.snapshots.aclose()
        self._parts.clear()
