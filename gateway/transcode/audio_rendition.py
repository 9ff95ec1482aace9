"""The camera's shared AAC and Opus encodes as renditions.

``RenditionKey("aac")`` and ``RenditionKey("opus")`` each run one ``AudioEncodePipeline``
in one ``Worker`` thread (FIFO: every sample matters), listening to the camera's PCM
rendition while their ring has readers, and publish each packet into a hub ``Ring`` as
a ``Frame`` (pts in the output sample rate, every packet a cut point whose ``config``
is the decoder configuration: AudioSpecificConfig or OpusHead).

When the camera's audio stops, the track must not stop with it: a player with audio
and video stalls when one track runs dry (MSE does). So while readers are there and
no PCM has come for ``SILENCE_AFTER`` seconds, the encode is fed silence up to the
present, keeping the audio timeline in step with the clock; when the camera's audio
returns, its blocks continue the timeline (a gap, not a stall or a speed change).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from fractions import Fraction
from typing import TYPE_CHECKING

from gateway.hub.renditions import RenditionHandle, RenditionKey
from gateway.hub.ring import Ring, every_frame
from gateway.media import NS_PER_SECOND, CutPoint, Frame, StreamKind

from .audio import PCM_RATE, PcmBlock
from .audio_codecs import AudioEncoding, EncodedAudio
from .audio_encode import AudioEncodePipeline
from .pcm import PCM_KEY, PcmRendition
from .producer import RingProducer
from .worker import InputPolicy

if TYPE_CHECKING:
    from gateway.hub.camera import CameraMedia

#: Content types of the encoded packets.
CONTENT_TYPES = {AudioEncoding.AAC: "audio/aac", AudioEncoding.OPUS: "audio/opus"}
#: Seconds without camera PCM before silence keeps the track going.
SILENCE_AFTER = 0.5
#: Seconds between checks for a silent camera.
SILENCE_CHECK = 0.1
#: Seconds of packets the ring holds.
RING_SECONDS = 4.0
RING_MAX_BYTES = 2 * 2**20

#: What the worker is handed: a decoded block, or "silence up to this input pts".
_Item = PcmBlock | int


def audio_key(encoding: AudioEncoding) -> RenditionKey[AudioRendition]:
    """Return the key of the camera's AAC or Opus encode."""
    return RenditionKey(encoding.value)


class AudioRendition(RingProducer[_Item]):
    """One camera's AAC or Opus encode and the ring its readers read."""

    def __init__(
        self,
        media: CameraMedia,
        encoding: AudioEncoding,
        *,
        pipeline: AudioEncodePipeline | None = None,
        silence_after: float = SILENCE_AFTER,
    ) -> None:
        """Start the encode: its ring, its worker, and its claim on the camera's PCM."""
        self.encoding = encoding
        self.camera = media.camera
        self._loop = media.loop
        self.pipeline = pipeline or AudioEncodePipeline(encoding)
        config = self.pipeline.config
        self.time_base = Fraction(1, config.sample_rate)
        ring = Ring(
            encoding.value,
            name=media.camera.name,
            seconds=RING_SECONDS,
            max_bytes=RING_MAX_BYTES,
            max_subscribers=media.settings.max_clients,
            tally=media.tally,
            is_cut=every_frame,
        )
        name = f"{encoding.value} {media.camera.name}"
        super().__init__(
            ring,
            self._job,
            loop=media.loop,
            policy=InputPolicy.FIFO,
            name=name,
            on_close=self.pipeline.close,
        )
        self._seq = itertools.count()
        self._silence_after_ns = int(silence_after * NS_PER_SECOND)
        #: Input pts of the end of the encode's output so far (None before a block), and
        #: the instant it stands for.
        self._end_pts: int | None = None
        self._end_ns = 0
        self._pcm: RenditionHandle[PcmRendition] = media.renditions.acquire(PCM_KEY)
        self._unlisten = self._pcm.rendition.listen(self._submit)
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(
            SILENCE_CHECK, self._check_silence
        )
        #: Seconds of silence the encode was fed while the camera sent none.
        self.silence_fills = 0

    # -- loop thread -------------------------------------------------------------------

    def _submit(self, block: PcmBlock) -> None:
        # Where the encode's output ends, in input pts: a block from before that end (the
        # camera back after silence was filled) goes on after it, as the encode puts it.
        start = block.pts if self._end_pts is None else max(block.pts, self._end_pts)
        self._end_pts = start + len(block.samples)
        # The ingest stamps a part's first sample with its arrival: its end is due
        # a block's length later (quiet counted from the arrival would overshoot).
        self._end_ns = block.received_ns + len(block.samples) * NS_PER_SECOND // PCM_RATE
        if len(self.ring):
            self.worker.submit(block)

    def _check_silence(self) -> None:
        self._timer = self._loop.call_later(SILENCE_CHECK, self._check_silence)
        if self._end_pts is None or not len(self.ring):
            return
        now = time.monotonic_ns()
        quiet = now - self._end_ns
        if quiet < self._silence_after_ns:
            return
        # Where the camera's timeline would be now, had it kept sending.
        target = self._end_pts + quiet * PCM_RATE // NS_PER_SECOND
        self.silence_fills += 1
        self.worker.submit(target)
        self._end_pts, self._end_ns = target, now

    # -- worker thread -----------------------------------------------------------------

    def _job(self, item: _Item, reset: bool) -> list[Frame]:
        if isinstance(item, int):
            packets = self.pipeline.fill_until(item, received_ns=time.monotonic_ns())
        else:
            packets = self.pipeline.feed(item)
        return [self._frame(packet) for packet in packets]

    def _frame(self, packet: EncodedAudio) -> Frame:
        return Frame(
            payload=packet.payload,
            content_type=CONTENT_TYPES[self.encoding],
            seq=next(self._seq),
            pts=packet.pts,
            time_base=self.time_base,
            received_ns=packet.received_ns,
            cut=CutPoint(config=self.pipeline.config.extradata),
            duration=packet.duration,
        )

    # -- rendition ---------------------------------------------------------------------

    def _detach(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._unlisten()
        self._pcm.release()

    def upstream_fps(self) -> tuple[StreamKind, float | None] | None:
        """Return None: audio has no rate to ask for."""
        return None

    def stats(self) -> dict[str, object]:
        """Return the encode's figures for ``/api`` and ``/metrics``."""
        config = self.pipeline.config
        return {
            "codec": config.codec,
            "sample_rate": config.sample_rate,
            "bit_rate": config.bit_rate,
            "packets_per_s": self.fps_out.rate(time.monotonic_ns()),
            "skipped": self.worker.counters.skipped,
            "failed": self.worker.counters.failed,
            "silence_fills": self.silence_fills,
            "last_error": self.worker.counters.last_error,
            **self.pipeline.counters.snapshot(),
        }
