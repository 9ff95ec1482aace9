"""The camera's decoded audio as a rendition: PCM for a level meter and the encoders.

``RenditionKey("pcm")`` is one ``AudioDecoder`` (one worker thread, FIFO: G.726 is
differential, every part matters) fed with the camera's audio parts, whose blocks go to
every listener: the level meter that ``/api`` shows (the camera holds this rendition
for as long as it runs) and the AAC and Opus encodes while they are consumed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from gateway.errors import RemoteProtocolError
from gateway.hub.renditions import RenditionKey
from gateway.media import Frame, StreamKind

from .audio import AudioDecoder, PcmBlock, codec_for

if TYPE_CHECKING:
    from gateway.hub.camera import CameraMedia

#: Samples the level meter averages over (0.5 s at 8 kHz).
LEVEL_WINDOW = 4000
#: The level reported for digital silence (16-bit PCM's floor is about -96 dBFS).
SILENCE_DBFS = -120.0
#: Full scale of int16 PCM: a full-scale square wave is 0 dBFS.
FULL_SCALE = 32768.0

#: Takes each decoded block, on the loop thread.
Listener = Callable[[PcmBlock], None]


class LevelMeter:
    """RMS level, in dBFS, of the last ``window`` decoded samples."""

    def __init__(self, *, window: int = LEVEL_WINDOW) -> None:
        """Average over about ``window`` samples (whole blocks)."""
        self.window = window
        self._blocks: deque[tuple[float, int]] = deque()
        self._energy = 0.0
        self._samples = 0

    def add(self, block: PcmBlock) -> None:
        """Take one decoded block (a PCM listener, loop thread)."""
        samples = block.samples.astype(np.float64)
        energy = float(np.dot(samples, samples))
        self._blocks.append((energy, len(samples)))
        self._energy += energy
        self._samples += len(samples)
        while len(self._blocks) > 1 and self._samples - self._blocks[0][1] >= self.window:
            old, n = self._blocks.popleft()
            self._energy -= old
            self._samples -= n

    @property
    def dbfs(self) -> float | None:
        """Return the level in dBFS (None before any sample)."""
        if not self._samples:
            return None
        mean = max(self._energy, 0.0) / self._samples
        if mean <= 0.0:
            return SILENCE_DBFS
        return round(max(10 * math.log10(mean / FULL_SCALE**2), SILENCE_DBFS), 2)


PCM_KEY: RenditionKey[PcmRendition] = RenditionKey("pcm")


class PcmRendition:
    """One camera's audio decoder, its level meter, and whoever else listens."""

    def __init__(self, media: CameraMedia, *, decoder: AudioDecoder | None = None) -> None:
        """Start decoding the camera's audio parts."""
        self.camera = media.camera
        self.meter = LevelMeter()
        self.decoder = decoder or AudioDecoder(media.camera.audio_codec, loop=media.loop)
        self.decoder.add_listener(self.meter.add)
        self._last_type: str | None = None
        self._detach = media.feed(StreamKind.AUDIO, self._submit)

    def _submit(self, frame: Frame) -> None:
        self._last_type = frame.content_type
        self.decoder.submit(frame)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Send every decoded block to ``listener`` from now on; return what stops it."""
        return self.decoder.add_listener(listener)

    def stop(self) -> None:
        """Stop the feed and the decoder."""
        self._detach()
        self.decoder.close()

    async def wait_stopped(self) -> None:
        """Wait for the worker to finish its part."""
        await self.decoder.wait_idle()

    def busy(self) -> bool:
        """Return True while the decoder holds parts."""
        return bool(self.decoder.parts_held)

    def consumers(self) -> int:
        """Return the listeners besides the level meter."""
        return len(self.decoder.listeners) - 1

    def upstream_fps(self) -> tuple[StreamKind, float | None] | None:
        """Return None: audio has no rate to ask for."""
        return None

    def stats(self) -> dict[str, object]:
        """Return the level and the decoder's figures (``/api`` ``streams.audio``)."""
        codec = None
        if self._last_type is not None:
            try:
                codec = codec_for(self._last_type, self.camera.audio_codec).value
            except RemoteProtocolError:
                codec = None
        return {
            "level_dbfs": self.meter.dbfs,
            "decoder_codec": codec,
            "decoder": self.decoder.counters.snapshot(),
            "listener_errors": self.decoder.listeners.errors,
        }
