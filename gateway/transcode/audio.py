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
import collections
import concurrent.futures
import contextlib
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
class AudioCounters:
    """What one decoder did, for ``/api`` and ``/metrics`` (updated on the loop thread)."""

    #: Parts submitted.
    parts_in: int = 0
    #: Blocks handed to ``on_pcm``.
    blocks_out: int = 0
    #: Samples handed to ``on_pcm``.
    samples_out: int = 0
    #: Parts dropped unseen: the oldest pending one when the bound was exceeded, or
    #: still pending at ``close``.
    parts_dropped: int = 0
    #: Parts that did not decode (bad content type, empty, too large, decoder error).
    decode_errors: int = 0
    #: Blocks flagged ``discontinuity``.
    discontinuities: int = 0
    #: Worker time spent decoding, nanoseconds.
    decode_ns_total: int = 0
    #: Why the most recent bad part was dropped.
    last_error: str | None = None

    def snapshot(self) -> dict[str, object]:
        """Return the counters as a JSON-ready dict."""
        return {
            "parts_in": self.parts_in,
            "blocks_out": self.blocks_out,
            "samples_out": self.samples_out,
            "parts_dropped": self.parts_dropped,
            "decode_errors": self.decode_errors,
            "discontinuities": self.discontinuities,
            "decode_seconds_total": self.decode_ns_total / 1e9,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class _Result:
    """What the worker hands back to the loop for one part."""

    #: The decoded block, or None when the part was dropped.
    block: PcmBlock | None
    #: Why the part was dropped.
    error: str | None
    #: Worker time spent, nanoseconds.
    elapsed_ns: int


class AudioDecoder:
    """Decodes one camera's audio parts, in order, in one worker thread.

    ``submit`` never blocks: parts wait in a FIFO of at most ``max_pending``; one more
    than that drops the oldest pending part (counted) and resets the decoder. Blocks are
    passed to ``on_pcm`` on the event loop thread, in submission order.
    """

    def __init__(
        self,
        codec: AudioCodec,
        on_pcm: Callable[[PcmBlock], None],
        *,
        loop: asyncio.AbstractEventLoop,
        max_pending: int = 16,
        max_part_bytes: int = 65536,
        decoder_factory: Callable[[AudioCodec], Decoder] = PyAvDecoder,
        clock: Callable[[], int] = time.monotonic_ns,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        """Create the decoder; the worker thread starts with the first part.

        :param codec: the camera's configured ``audio_codec``; each part's content type
            may override it (see ``codec_for``).
        :param on_pcm: called on the loop thread with each decoded block, in order.
        :param loop: the event loop ``submit`` is called on.
        :param max_pending: parts that may wait behind the one being decoded (16 parts
            of 64 ms: about a second).
        :param max_part_bytes: larger parts are dropped undecoded (a decode error).
        :param decoder_factory: opens a fresh decoder for a codec (tests pass a stub).
        :param clock: monotonic nanoseconds, for the decode-time counter.
        """
        if max_pending < 1 or max_part_bytes < 1:
            raise LocalProtocolError("max_pending and max_part_bytes must be at least 1")
        self.codec = codec
        self.counters = AudioCounters()
        self._on_pcm = on_pcm
        self._loop = loop
        self._max_pending = max_pending
        self._max_part_bytes = max_part_bytes
        self._factory = decoder_factory
        self._clock = clock
        self._log = logger or _log
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"audio[{codec.value}]"
        )
        # Loop thread state.
        self._pending: collections.deque[Frame] = collections.deque()
        self._in_flight: asyncio.Future[None] | None = None
        self._reset_next = False
        self._closed = False
        # Worker thread state (touched by one job at a time).
        self._decoder: Decoder | None = None
        self._decoder_codec: AudioCodec | None = None
        self._last_seq: int | None = None
        self._next_pts: int | None = None

    @property
    def parts_held(self) -> int:
        """Return how many parts are held (in the worker plus pending)."""
        return (self._in_flight is not None) + len(self._pending)

    @property
    def closed(self) -> bool:
        """Return True once ``close`` was called."""
        return self._closed

    def submit(self, frame: Frame) -> None:
        """Queue one audio part for decoding (loop thread; never blocks)."""
        if self._closed:
            raise LocalProtocolError("audio decoder is closed")
        self.counters.parts_in += 1
        if self._in_flight is None:
            self._start(frame)
            return
        self._pending.append(frame)
        if len(self._pending) > self._max_pending:
            self._pending.popleft()
            self.counters.parts_dropped += 1
            # The decoder state would not match the encoder's after the hole.
            self._reset_next = True

    def close(self) -> None:
        """Stop taking parts; drop pending ones; the worker exits after the current one."""
        if self._closed:
            return
        self._closed = True
        self.counters.parts_dropped += len(self._pending)
        self._pending.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def wait_idle(self) -> None:
        """Wait until no part is held (after ``close``: until the worker is done)."""
        while self._in_flight is not None:
            await asyncio.wait({self._in_flight})

    def _start(self, frame: Frame) -> None:
        """Hand ``frame`` to the worker thread."""
        reset, self._reset_next = self._reset_next, False
        waiter = self._loop.create_future()
        self._in_flight = waiter
        job = self._executor.submit(self._work, frame, reset)
        job.add_done_callback(lambda done: self._hand_back(done, waiter))

    def _hand_back(
        self, job: concurrent.futures.Future[_Result], waiter: asyncio.Future[None]
    ) -> None:
        """Pass a finished job to the loop thread (worker thread, or loop on cancel)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
            self._loop.call_soon_threadsafe(self._done, job, waiter)

    def _work(self, frame: Frame, reset: bool) -> _Result:
        """Decode one part (worker thread)."""
        started = self._clock()
        try:
            block = self._decode(frame, reset)
        except (RemoteProtocolError, av.FFmpegError) as exc:
            self._decoder = None  # the next part starts afresh, as a discontinuity
            return _Result(None, str(exc), self._clock() - started)
        except Exception:
            self._decoder = None
            raise
        return _Result(block, None, self._clock() - started)

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

    def _done(self, job: concurrent.futures.Future[_Result], waiter: asyncio.Future[None]) -> None:
        """Account for the finished part, start the next, deliver (loop thread)."""
        self._in_flight = None
        if not waiter.done():
            waiter.set_result(None)
        if self._closed or job.cancelled():
            return
        if self._pending:
            # Keep the worker busy before running the consumer's callback.
            self._start(self._pending.popleft())
        error = job.exception()
        if error is not None:
            # A bug in a decoder must not stop the stream: drop the part, go on.
            self.counters.decode_errors += 1
            self.counters.last_error = f"{type(error).__name__}: {error}"
            self._log.error("audio decode failed", exc_info=error)
            return
        result = job.result()
        self.counters.decode_ns_total += result.elapsed_ns
        if result.block is None:
            self.counters.decode_errors += 1
            self.counters.last_error = result.error
            self._log.debug("audio part dropped: %s", result.error)
            return
        block = result.block
        self.counters.blocks_out += 1
        self.counters.samples_out += len(block.samples)
        self.counters.discontinuities += block.discontinuity
        self._on_pcm(block)
