"""Camera audio parts decoded to 16-bit PCM in one worker thread (VAPIX §5.5).

An Axis camera sends ``audio/32KADPCM`` (G.726 at 32 kbit/s, 4 bits per sample) or,
on some firmware, ``audio/basic`` (G.711 mu-law), 8000 samples/s, mono, cut into
multipart parts. ``AudioDecoder`` turns those parts into ``PcmBlock``s with one
continuous sample clock, ready for an AAC or Opus encoder.

Unlike JPEG variants, audio is never latest-wins here: G.726 is differential, so the
decoder's state must see every part. Parts queue up to a bound; past it the oldest is
dropped, the decoder is reset and the next block is flagged as a discontinuity.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, Protocol

import av
import numpy as np
import numpy.typing as npt

from gateway.config import AudioCodec
from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.media import Frame

from .worker import InputPolicy, Listeners, Worker, WorkerCounters

_log = logging.getLogger(__name__)

#: G.726 and G.711 are 8 kHz codecs; every ``PcmBlock`` has this rate.
PCM_RATE: Final = 8000
#: Unit of ``PcmBlock.pts``.
PCM_TIME_BASE: Final = Fraction(1, PCM_RATE)

#: Part content type (lower case, no parameters) -> the codec it fixes, or None where
#: the configured ``audio_codec`` decides (G.726 bit order is not in the type).
_CONTENT_TYPES: Final[dict[str, AudioCodec | None]] = {
    # VAPIX §5.5.2; RFC 3802 registers the type but cameras differ in the packing.
    "audio/32kadpcm": None,
    # RFC 2046 §4.3: 8 kHz mu-law.
    "audio/basic": AudioCodec.PCMU,
    # RFC 3551 §4.5.14 name of the same encoding.
    "audio/pcmu": AudioCodec.PCMU,
    # RFC 3551 §4.5.4: G726-32 packs the first code word into the LEAST significant bits.
    "audio/g726-32": AudioCodec.G726LE,
    # RFC 3551 §4.5.4 / ITU-T I.366.2 Annex E: AAL2 packs MOST significant bits first.
    "audio/aal2-g726-32": AudioCodec.G726,
}

# The two G.726 bit orders (code words A then B; octet bits listed MSB first):
#   MSB-first: octet = A3 A2 A1 A0 B3 B2 B1 B0 -- ITU-T I.366.2 Annex E (AAL2-G726-32).
#     FFmpeg's "g726" codec reads and writes this order (big-endian bit reader).
#   LSB-first: octet = B3 B2 B1 B0 A3 A2 A1 A0 -- RFC 3551 §4.5.4 "G726-32" and ITU-T
#     X.420; VPIM implementations of RFC 3802 audio/32KADPCM document this order too,
#     so the type's name does not settle what a camera sends. FFmpeg's "g726le".
# Decoding with the wrong one still "works" (any nibble is a valid code word) but gives
# noise: on the simulator's tones the right order measures 36-45 dB SNR, the wrong one
# -24 to +10 dB (tests/transcode/test_transcode_audio_snr.py). So the camera's packing
# is configuration (``audio_codec``); the content type cannot tell.
_DECODERS: Final[dict[AudioCodec, str]] = {
    AudioCodec.G726: "g726",
    AudioCodec.G726LE: "g726le",
    AudioCodec.PCMU: "pcm_mulaw",
}

#: Coded bits per sample (G.726 at 32 kbit/s: 4).
_BITS_PER_SAMPLE: Final[dict[AudioCodec, int]] = {
    AudioCodec.G726: 4,
    AudioCodec.G726LE: 4,
    AudioCodec.PCMU: 8,
}

Samples = npt.NDArray[np.int16]


def codec_for(content_type: str, configured: AudioCodec) -> AudioCodec:
    """Return the codec of a part: the content type decides, else the configured one.

    ``audio/basic`` is mu-law whatever the configuration says; ``audio/32KADPCM`` is
    G.726 in the configured bit order (MSB-first ``g726`` when the configuration names
    ``pcmu``, which says nothing about G.726). Raises RemoteProtocolError for a type
    that is not camera audio.
    """
    key = content_type.partition(";")[0].strip().lower()
    try:
        fixed = _CONTENT_TYPES[key]
    except KeyError:
        raise RemoteProtocolError(f"not a camera audio type: {content_type!r}") from None
    if fixed is not None:
        return fixed
    return configured if configured is not AudioCodec.PCMU else AudioCodec.G726


@dataclass(frozen=True, slots=True, eq=False)
class PcmBlock:
    """One decoded audio part: mono 16-bit PCM on a continuous sample clock."""

    #: Signed 16-bit mono samples (read-only; shared by every consumer).
    samples: Samples
    #: Presentation time of the first sample, in samples (``PCM_TIME_BASE``).
    pts: int
    #: ``Frame.received_ns`` of the part the samples came from.
    received_ns: int
    #: ``Frame.seq`` of the part the samples came from.
    seq: int
    #: True when this block does not follow the previous one seamlessly (a part was
    #: missing, dropped or undecodable, or the decoder was reset): fade, don't splice.
    discontinuity: bool = False
    #: Samples per second.
    sample_rate: int = PCM_RATE

    @property
    def time_base(self) -> Fraction:
        """Return the unit of ``pts``."""
        return Fraction(1, self.sample_rate)


class Decoder(Protocol):
    """A stateful decoder for one codec, used from the worker thread only."""

    def decode(self, data: bytes) -> Samples:
        """Return the samples of one part; raise RemoteProtocolError or av.FFmpegError."""
        ...


class PyAvDecoder:
    """FFmpeg's decoder for one ``AudioCodec`` (fresh state on construction)."""

    def __init__(self, codec: AudioCodec) -> None:
        ctx = av.CodecContext.create(_DECODERS[codec], "r")
        assert isinstance(ctx, av.AudioCodecContext)
        ctx.sample_rate = PCM_RATE
        ctx.layout = "mono"
        if codec is not AudioCodec.PCMU:
            # FFmpeg's G.726 decoder takes its code size from bits_per_coded_sample.
            ctx.options = {"bits_per_coded_sample": str(_BITS_PER_SAMPLE[codec])}
        ctx.open()
        self._ctx = ctx

    def decode(self, data: bytes) -> Samples:
        """Return the samples of one part."""
        chunks: list[Samples] = []
        for frame in self._ctx.decode(av.Packet(data)):
            if frame.format.name != "s16" or frame.layout.nb_channels != 1:
                raise LocalProtocolError(f"decoder gave {frame.format.name} {frame.layout}")
            chunks.append(frame.to_ndarray().reshape(-1).astype(np.int16, copy=False))
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


@dataclass(slots=True)
class AudioCounters(WorkerCounters):
    """What one decoder did, for ``/api`` and ``/metrics``, in the decoder's words."""

    #: Samples handed to the listeners.
    samples_out: int = 0
    #: Blocks flagged ``discontinuity``.
    discontinuities: int = 0

    @property
    def parts_in(self) -> int:
        """Return the parts submitted."""
        return self.items_in

    @property
    def blocks_out(self) -> int:
        """Return the blocks handed to the listeners."""
        return self.items_out

    @property
    def parts_dropped(self) -> int:
        """Return the parts dropped unseen: pushed out by the bound, or pending at close."""
        return self.skipped

    @property
    def decode_errors(self) -> int:
        """Return the parts that did not decode (bad type, empty, too large, decoder error)."""
        return self.failed

    @property
    def decode_ns_total(self) -> int:
        """Return the worker time spent decoding, nanoseconds."""
        return self.busy_ns_total

    def snapshot(self) -> dict[str, object]:
        """Return the counters as a JSON-ready dict."""
        return {
            "parts_in": self.items_in,
            "blocks_out": self.items_out,
            "samples_out": self.samples_out,
            "parts_dropped": self.skipped,
            "decode_errors": self.failed,
            "discontinuities": self.discontinuities,
            "decode_seconds_total": self.busy_ns_total / 1e9,
            "last_error": self.last_error,
        }


class AudioDecoder:
    """Decodes one camera's audio parts, in order, in one worker thread.

    ``submit`` never blocks: parts wait in a FIFO of at most ``max_pending``; one more
    than that drops the oldest pending part (counted) and resets the decoder. Blocks go
    to every listener on the event loop thread, in submission order.
    """

    def __init__(
        self,
        codec: AudioCodec,
        on_pcm: Callable[[PcmBlock], None] | None = None,
        *,
        loop: asyncio.AbstractEventLoop,
        max_pending: int = 16,
        max_part_bytes: int = 65536,
        max_listeners: int = 8,
        decoder_factory: Callable[[AudioCodec], Decoder] = PyAvDecoder,
        clock: Callable[[], int] = time.monotonic_ns,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        """Create the decoder; the worker thread starts with the first part.

        :param codec: the camera's configured ``audio_codec``; each part's content type
            may override it (see ``codec_for``).
        :param on_pcm: a first listener (see ``add_listener``).
        :param loop: the event loop ``submit`` is called on.
        :param max_pending: parts that may wait behind the one being decoded (16 parts
            of 64 ms: about a second).
        :param max_part_bytes: larger parts are dropped undecoded (a decode error).
        :param max_listeners: callbacks that may take the blocks at once.
        :param decoder_factory: opens a fresh decoder for a codec (tests pass a stub).
        :param clock: monotonic nanoseconds, for the decode-time counter.
        """
        if max_pending < 1 or max_part_bytes < 1:
            raise LocalProtocolError("max_pending and max_part_bytes must be at least 1")
        self.codec = codec
        self.counters = AudioCounters()
        log = logger or _log
        #: Who takes the decoded blocks (a level meter, AAC and Opus encoders, ...).
        self.listeners: Listeners[PcmBlock] = Listeners(
            name="audio decode", max_listeners=max_listeners, logger=log
        )
        if on_pcm is not None:
            self.listeners.add(on_pcm)
        self._max_part_bytes = max_part_bytes
        self._factory = decoder_factory
        self._worker: Worker[Frame, PcmBlock] = Worker(
            self._work,
            self._deliver,
            loop=loop,
            policy=InputPolicy.FIFO,
            max_pending=max_pending,
            name="audio decode",
            clock=clock,
            logger=log,
            counters=self.counters,
        )
        # Worker thread state (touched by one job at a time).
        self._decoder: Decoder | None = None
        self._decoder_codec: AudioCodec | None = None
        self._last_seq: int | None = None
        self._next_pts: int | None = None

    @property
    def parts_held(self) -> int:
        """Return how many parts are held (in the worker plus pending)."""
        return self._worker.items_held

    @property
    def closed(self) -> bool:
        """Return True once ``close`` was called."""
        return self._worker.closed

    def add_listener(self, callback: Callable[[PcmBlock], None]) -> Callable[[], None]:
        """Pass every later block to ``callback`` too (loop thread); return its remover."""
        return self.listeners.add(callback)

    def submit(self, frame: Frame) -> None:
        """Queue one audio part for decoding (loop thread; never blocks)."""
        self._worker.submit(frame)

    def close(self) -> None:
        """Stop taking parts; drop pending ones; the worker exits after the current one."""
        self._worker.close()

    async def wait_idle(self) -> None:
        """Wait until no part is held (after ``close``: until the worker is done)."""
        await self._worker.wait_idle()

    def _work(self, frame: Frame, reset: bool) -> tuple[PcmBlock]:
        """Decode one part (worker thread)."""
        try:
            return (self._decode(frame, reset),)
        except av.FFmpegError as exc:
            self._decoder = None  # the next part starts afresh, as a discontinuity
            raise RemoteProtocolError(str(exc)) from exc
        except Exception:
            self._decoder = None
            raise

    def _decode(self, frame: Frame, reset: bool) -> PcmBlock:
        """Decode ``frame`` on the continuous sample clock (worker thread)."""
        codec = codec_for(frame.content_type, self.codec)
        size = len(frame.payload)
        if not 0 < size <= self._max_part_bytes:
            raise RemoteProtocolError(f"audio part of {size} bytes")
        gap = self._last_seq is not None and frame.seq != self._last_seq + 1
        if reset or gap or self._decoder is None or codec is not self._decoder_codec:
            self._decoder = self._factory(codec)
            self._decoder_codec = codec
            fresh = True
        else:
            fresh = False
        samples = self._decoder.decode(bytes(frame.payload))
        samples.flags.writeable = False
        first = self._next_pts is None
        # The ingest clock (Frame.pts) anchors the first block and re-anchors after a
        # hole, so time lost to a hole is not lost from the timeline; otherwise blocks
        # are back to back (a real camera's clock drifts against ours: don't chase it).
        arrival = frame.pts * frame.time_base.numerator * PCM_RATE // frame.time_base.denominator
        if self._next_pts is None:
            pts = arrival
        elif fresh:
            pts = max(self._next_pts, arrival)
        else:
            pts = self._next_pts
        self._next_pts = pts + len(samples)
        self._last_seq = frame.seq
        return PcmBlock(samples, pts, frame.received_ns, frame.seq, fresh and not first)

    def _deliver(self, block: PcmBlock) -> None:
        """Count the block and hand it to every listener (loop thread)."""
        self.counters.samples_out += len(block.samples)
        self.counters.discontinuities += block.discontinuity
        self.listeners(block)
