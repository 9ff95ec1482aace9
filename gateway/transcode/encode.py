"""The camera's shared H.264 encode as a rendition: one encoder, every viewer reads it.

``RenditionKey("h264", max_size)`` is one ``H264Pipeline`` in one ``Worker`` thread, fed
with the camera's MJPEG frames (latest-wins: an encoder that falls behind skips input,
counted) or MPEG-2 pictures (FIFO: pictures depend on each other; after an overflow it
waits for the next GOP; ``Mpeg2Pictures`` unwraps program and transport streams in the
worker), publishing each access unit into a hub ``Ring`` as a ``Frame``:
``payload`` in Annex B with SPS/PPS before every IDR (WebRTC, raw H.264), ``sample`` in
the MP4 form (fMP4, LL-HLS), converted once per picture. Keyframes are cut points whose
``config`` is the ``avcC`` record, so a reader joining there has what it needs.

Readers ask for an IDR with ``Cursor.request_keyframe()``; ``KeyframeGate`` lets at most
one request through per ``min_interval`` and ignores one while a keyframe is due anyway.
The encoder is fed only while the ring has readers (DESIGN §6: only while someone watches).
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import TYPE_CHECKING

from gateway.config import CameraConfig, H264Config, VideoSource
from gateway.errors import LocalProtocolError
from gateway.hub.renditions import RenditionKey
from gateway.hub.ring import Ring, has_cut
from gateway.media import CutPoint, Frame, StreamKind
from gateway.mux.h264 import avcc_from_parameter_sets

from .h264 import EncodedVideo, H264Pipeline
from .h264_params import DEFAULT_FPS, TICKS_PER_SECOND, H264Settings
from .meter import RateMeter
from .mpeg2_pictures import Mpeg2Pictures, SourcePicture
from .producer import RingProducer
from .worker import InputPolicy

if TYPE_CHECKING:
    from gateway.hub.camera import CameraMedia

_log = logging.getLogger(__name__)

#: The rendition kind of the shared H.264 encode.
H264_KIND = "h264"
#: Content type of the encoded frames (RFC 6184's media subtype).
H264_TYPE = "video/h264"
#: Default: at most one requested IDR per this many seconds (DESIGN §6, issue 8).
MIN_KEYFRAME_INTERVAL = 0.5
#: Seconds of encoded video the ring holds for readers that join or fall behind.
RING_SECONDS = 4.0
RING_MAX_BYTES = 16 * 2**20


def h264_key(max_size: tuple[int, int] | None = None) -> RenditionKey[H264Rendition]:
    """Return the key of the camera's encode (``max_size``: a smaller output size)."""
    return RenditionKey(H264_KIND, max_size)


def h264_settings(config: H264Config, max_size: tuple[int, int] | None = None) -> H264Settings:
    """Return the pipeline settings of a camera's ``[cameras.h264]`` (and a size cap)."""
    size = config.max_size
    if max_size is not None:
        size = (min(size[0], max_size[0]), min(size[1], max_size[1]))
    return H264Settings(
        encoder=config.encoder,
        preset=config.preset,
        bitrate_kbps=config.bitrate_kbps,
        max_size=size,
        keyframe_seconds=config.keyframe_seconds or 1.0,
        max_fps=config.max_fps,
    )


class KeyframeGate:
    """Rate limit of requested IDRs (sans-IO: ``now`` in seconds is an argument).

    A request inside the window is not dropped: it waits (``pending``) until an IDR
    comes anyway (every reader asking joined before it, so any IDR published after the
    request serves it) or the window ends, whichever is first. Viewers joining a few
    hundred milliseconds apart then wait at most ``min_interval`` for their keyframe,
    not a whole keyframe interval, and a burst of PLIs still makes one IDR.
    """

    def __init__(self, *, min_interval: float = MIN_KEYFRAME_INTERVAL) -> None:
        """Let one request through per ``min_interval`` seconds."""
        if min_interval < 0:
            raise LocalProtocolError("min_interval must be >= 0")
        self.min_interval = min_interval
        self._last: float | None = None
        #: A request inside the window still waits for an IDR.
        self.pending = False
        #: Requests made / passed to the encoder / held by the rate limit / free
        #: because a keyframe was due anyway / held ones passed at the window's end.
        self.requested = 0
        self.granted = 0
        self.limited = 0
        self.due_anyway = 0
        self.deferred = 0

    def request(self, now: float, *, due: bool = False) -> bool:
        """Return True if a keyframe request at ``now`` goes to the encoder."""
        self.requested += 1
        if due:
            self.due_anyway += 1
            return False
        if self._last is not None and now - self._last < self.min_interval:
            self.limited += 1
            self.pending = True
            return False
        self._last = now
        self.granted += 1
        return True

    def keyframe(self) -> None:
        """Note that an IDR was published: it serves every request pending."""
        self.pending = False

    def poll(self, now: float, *, due: bool = False) -> bool:
        """Return True if a pending request goes to the encoder now (its window ended)."""
        if not self.pending or (self._last is not None and now - self._last < self.min_interval):
            return False
        self.pending = False
        if due:
            return False
        self._last = now
        self.granted += 1
        self.deferred += 1
        return True


class H264Rendition(RingProducer[Frame]):
    """One camera's H.264 encode (at one size) and the ring its readers read."""

    def __init__(
        self,
        media: CameraMedia,
        settings: H264Settings,
        *,
        source: VideoSource = VideoSource.MJPEG,
        min_keyframe_interval: float = MIN_KEYFRAME_INTERVAL,
        pipeline: H264Pipeline | None = None,
    ) -> None:
        """Start the encode: its ring, its worker thread, and its feed of camera frames."""
        camera: CameraConfig = media.camera
        self.camera = camera
        self.settings = settings
        self.source = StreamKind.MJPEG if source is VideoSource.MJPEG else StreamKind.MPEG2
        self._loop = media.loop
        policy = InputPolicy.LATEST if self.source is StreamKind.MJPEG else InputPolicy.FIFO
        ring = Ring(
            H264_KIND,
            name=camera.name,
            seconds=RING_SECONDS,
            max_bytes=RING_MAX_BYTES,
            max_subscribers=media.settings.max_clients,
            tally=media.tally,
            is_cut=has_cut,
        )
        super().__init__(
            ring,
            self._job,
            loop=media.loop,
            policy=policy,
            name=f"h264 {camera.name}",
            on_close=self._free,
        )
        ring.set_keyframe_source(self.request_keyframe)
        self.pipeline = pipeline or H264Pipeline(settings, source=self.source, fps=camera.fps)
        self.gate = KeyframeGate(min_interval=min_keyframe_interval)
        self.fps_in = RateMeter()
        self._seq = itertools.count()
        # Keyframe requests cross to the worker as a count: the loop raises it, the
        # worker serves it; a LATEST input replaced before it ran cannot lose one.
        self._requests = 0
        self._served = 0
        #: The newest input's pts and the step between inputs: where the next one lands.
        self._last_in: int | None = None
        self._step = round(TICKS_PER_SECOND / (camera.fps or DEFAULT_FPS))
        # Pictures not submitted (no reader) break MPEG-2 references: the worker starts
        # again at a GOP when this count moved.
        self._missed = 0
        self._missed_seen = 0
        #: MPEG-2: what turns the camera's units into pictures (worker thread only).
        self.mpeg2 = Mpeg2Pictures() if self.source is StreamKind.MPEG2 else None
        self._unfeed = media.feed(self.source, self._submit)

    # -- loop thread -------------------------------------------------------------------

    def _submit(self, frame: Frame) -> None:
        if not len(self.ring):
            self._missed += 1
            return  # nobody watches: the encoder idles (and lingers)
        gate = self.gate
        if gate.pending and gate.poll(self._loop.time(), due=self.pipeline.keyframe_due(frame.pts)):
            self._requests += 1
        self.fps_in.tick(frame.received_ns)
        if self._last_in is not None and 0 < frame.pts - self._last_in < TICKS_PER_SECOND:
            self._step = frame.pts - self._last_in
        self._last_in = frame.pts
        self.worker.submit(frame)

    def request_keyframe(self) -> None:
        """Ask for an IDR on the next picture (rate-limited; free while one is due)."""
        # Due when the picture after the newest input is an IDR anyway (the newest
        # encoded one never is: the schedule moves past each IDR it makes).
        upcoming = 0 if self._last_in is None else self._last_in + self._step
        due = self.pipeline.keyframe_due(upcoming)
        if self.gate.request(self._loop.time(), due=due):
            self._requests += 1

    def _publish(self, frame: Frame) -> None:
        if frame.cut is not None:
            self.gate.keyframe()
        super()._publish(frame)

    # -- worker thread -----------------------------------------------------------------

    def _free(self) -> None:
        """Free the pipeline's codec contexts after the last job (worker thread)."""
        self.pipeline.close()

    def _job(self, frame: Frame, reset: bool) -> list[Frame]:
        if self.mpeg2 is not None:
            # Whole pictures of bare elementary stream; after pictures were missed (no
            # reader) or dropped in front of the encoder (reset), decoding resumes at
            # the next GOP.
            missed = self._missed
            if missed != self._missed_seen:
                self._missed_seen = missed
                reset = True
            pictures = self.mpeg2.pictures(frame, reset=reset)
            if not pictures:
                return []
        else:
            pictures = [SourcePicture(frame.payload, frame.pts, frame.received_ns)]
        requests = self._requests
        force = requests > self._served
        self._served = requests
        out = []
        for picture in pictures:
            units = self.pipeline.encode(picture.data, picture.pts, force_keyframe=force)
            force = False  # the pipeline keeps a request until it makes the IDR
            out += [self._frame(unit, picture.received_ns) for unit in units]
        return out

    def _frame(self, unit: EncodedVideo, received_ns: int) -> Frame:
        cut = None
        if unit.keyframe:
            config = None
            if unit.sps is not None and unit.pps is not None:
                config = avcc_from_parameter_sets(unit.sps, unit.pps)
            cut = CutPoint(config=config)
        return Frame(
            payload=unit.annexb,
            content_type=H264_TYPE,
            seq=next(self._seq),
            pts=unit.pts,
            received_ns=received_ns,
            cut=cut,
            sample=unit.sample,
            dimensions=(unit.width, unit.height),
        )

    # -- rendition ---------------------------------------------------------------------

    def _detach(self) -> None:
        self._unfeed()

    def upstream_fps(self) -> tuple[StreamKind, float | None] | None:
        """Return the camera rate the encode needs while it has readers."""
        if not len(self.ring):
            return None
        return self.source, None if self.settings.max_fps is None else float(self.settings.max_fps)

    def stats(self) -> dict[str, object]:
        """Return the encode's figures for ``/api`` and ``/metrics``."""
        counters = self.pipeline.counters
        newest = self.ring.newest
        now = time.monotonic_ns()
        return {
            "encoder": self.pipeline.encoder_name,
            "codec": self.pipeline.codec,
            "source": self.source.value,
            "size": _size(newest),
            "fps_in": self.fps_in.rate(now),
            "fps_out": self.fps_out.rate(now),
            "skipped": self.worker.counters.skipped,
            "failed": counters.failed + self.worker.counters.failed,
            "encode_ms_mean": round(counters.busy_ns_total / max(counters.frames_in, 1) / 1e6, 3),
            "keyframes_requested": self.gate.requested,
            "keyframes_forced": counters.keyframes_forced,
            "keyframes_produced": counters.keyframes_forced + counters.keyframes_periodic,
            "keyframes_rate_limited": self.gate.limited,
            "keyframes_deferred": self.gate.deferred,
            "last_error": counters.last_error or self.worker.counters.last_error,
            **{f"pipeline_{k}": v for k, v in counters.snapshot().items()},
            **{f"mpeg2_{k}": v for k, v in (self.mpeg2.stats() if self.mpeg2 else {}).items()},
        }


def _size(frame: Frame | None) -> str | None:
    if frame is None or frame.dimensions is None:
        return None
    width, height = frame.dimensions
    return f"{width}x{height}"
