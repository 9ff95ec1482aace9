"""Camera PCM encoded to AAC-LC (fMP4, HLS) or Opus (WebRTC): blocking, one worker thread.

An ``AudioEncodePipeline`` takes the decoder's 8 kHz ``PcmBlock``s, resamples them
(PyAV's ``AudioResampler``), cuts the encoder's frames (1024 samples for AAC, 960 =
20 ms for Opus) and hands back ``EncodedAudio`` packets. Not thread-safe; no asyncio.

Timestamps. A packet's ``pts`` (in the output sample rate) is where the first sample
it decodes to belongs, the encoder's priming included: decoding every packet and
placing its samples at the packet's ``pts`` lines the audio up with the input, whose
sample at input pts ``t`` lands at ``t * rate / 8000``. So the first packet of a
timeline starts ``config.priming`` samples early (AAC 1024, Opus its pre-skip), as in
FFmpeg; a muxer that wants presentation to begin at the input's first sample skips
that many (edit list, Opus pre-skip), one that does not plays them as near-silence.

While the input is continuous every packet starts where the previous one ended. A
jump in the input pts becomes a jump in the output pts (a gap: no stall, no speed
change): the encoder runs on, the timeline piece before the jump is padded with
silence to the next point where packet boundaries fall, and the packets after it map
onto the new pts. Jumps shorter than about a frame are filled with silence instead (a
packet cannot start there). A jump backwards re-anchors the timeline right after the
last packet: output pts never go backwards. ``fill_until`` encodes silence up to a pts
so a caller can keep the track advancing while the camera sends nothing (MSE stalls
when a track runs dry); past ``max_gap_samples`` the timeline restarts at that pts.

Settings and the reasons for them are in ``audio_codecs``.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Final

import av
import numpy as np
import numpy.typing as npt

from gateway.errors import LocalProtocolError, RemoteProtocolError

from .audio import PCM_RATE, PcmBlock
from .audio_codecs import (
    CODEC_SPECS,
    AudioEncodeCounters,
    AudioEncoderConfig,
    AudioEncoding,
    Context,
    EncodedAudio,
)

#: Input samples resampled per call: bounds the intermediate arrays for any block size.
_CHUNK: Final = 4096
#: Fade length at a splice, in seconds (a hard cut clicks).
_FADE_SECONDS: Final = Fraction(1, 400)

#: Samples in the encoder's sample format (float32 for AAC, int16 for Opus).
Buffer = npt.NDArray[Any]


class AudioEncodePipeline:
    """Encodes one camera's PCM blocks to one codec; call from one worker thread only."""

    def __init__(
        self,
        encoding: AudioEncoding,
        *,
        sample_rate: int | None = None,
        bit_rate: int | None = None,
        max_block_samples: int = 10 * PCM_RATE,
        max_gap_samples: int = 10 * PCM_RATE,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        """Open the encoder.

        :param encoding: AAC-LC or Opus.
        :param sample_rate: output rate, a multiple of 8000 the codec allows (default
            48000).
        :param bit_rate: bits per second (default AAC 48000, Opus 32000).
        :param max_block_samples: longer blocks are dropped (an error).
        :param max_gap_samples: ``fill_until`` restarts the timeline rather than
            encode more silence than this (input samples).
        :param clock: monotonic nanoseconds, for the encode-time counter.
        """
        spec = CODEC_SPECS[encoding]
        rate = spec.rates[0] if sample_rate is None else sample_rate
        if rate not in spec.rates:
            raise LocalProtocolError(f"{encoding.value} at {rate} Hz: use one of {spec.rates}")
        if max_block_samples < 1 or max_gap_samples < 1:
            raise LocalProtocolError("max_block_samples and max_gap_samples must be at least 1")
        self.encoding = encoding
        self.counters = AudioEncodeCounters()
        self._spec = spec
        self._rate = rate
        self._ratio = rate // PCM_RATE
        self._bit_rate = spec.bit_rate if bit_rate is None else bit_rate
        self._max_block = max_block_samples
        self._max_gap = max_gap_samples
        self._clock = clock
        self._fade = int(_FADE_SECONDS * PCM_RATE)
        self._encoder = self._open()
        extradata, priming = spec.config(self._encoder, rate)
        self._frame = self._encoder.frame_size
        self._config = AudioEncoderConfig(spec.codec, rate, 1, priming, extradata, self._bit_rate)
        # Segment boundaries must fall where a packet's decoded samples start: encoder
        # input index k * frame - priming.
        self._align = -priming % self._frame
        self._out: list[EncodedAudio] = []
        self._received_ns = 0
        self._out_end: int | None = None
        self._closed = False
        self._restart()

    @property
    def config(self) -> AudioEncoderConfig:
        """Return what a muxer or SDP needs (fixed for the pipeline's life)."""
        return self._config

    @property
    def next_pts(self) -> int | None:
        """Return the input pts a continuous next block starts at (None before the first)."""
        return self._next_in

    def feed(self, block: PcmBlock) -> list[EncodedAudio]:
        """Encode one block; return the packets it completed (often none)."""
        samples = self._check(block)
        self.counters.blocks_in += 1
        return self._run(block.received_ns, lambda: self._feed(block, samples))

    def fill_until(self, pts: int, *, received_ns: int = 0) -> list[EncodedAudio]:
        """Encode silence from the end of the input up to input pts ``pts``.

        Does nothing before the first block or when ``pts`` is not ahead of the
        output; more than ``max_gap_samples`` ahead, restarts the timeline at ``pts``.
        """
        self._check_open()
        return self._run(received_ns, lambda: self._fill(pts))

    def flush(self) -> list[EncodedAudio]:
        """Encode what is held (padded to a frame) and drain the encoder; then it is closed."""
        self._check_open()
        packets = self._run(self._received_ns, self._drain_all)
        self._closed = True
        return packets

    def _check_open(self) -> None:
        """Refuse calls after ``flush``."""
        if self._closed:
            raise LocalProtocolError(f"{self.encoding.value} pipeline is flushed or closed")

    def _check(self, block: PcmBlock) -> npt.NDArray[np.int16]:
        """Return the block's samples, or raise LocalProtocolError for a misused API."""
        self._check_open()
        samples = block.samples
        if block.sample_rate != PCM_RATE or samples.ndim != 1 or samples.dtype != np.int16:
            raise LocalProtocolError(
                f"need mono int16 at {PCM_RATE} Hz, got {samples.dtype} {samples.shape} "
                f"at {block.sample_rate} Hz"
            )
        return samples

    def _run(self, received_ns: int, work: Callable[[], None]) -> list[EncodedAudio]:
        """Run ``work``, counting time and errors; return the packets it made."""
        started = self._clock()
        self._received_ns = received_ns
        try:
            work()
        except RemoteProtocolError as exc:
            self._fail(str(exc))
        except av.FFmpegError as exc:
            # The encoder's state is unknown: start afresh, after the last packet.
            self._fail(f"{type(exc).__name__}: {exc}")
            self._encoder = self._open()
            self._restart()
        finally:
            self.counters.encode_ns_total += self._clock() - started
        packets, self._out = self._out, []
        return packets

    def _fail(self, reason: str) -> None:
        """Count an error."""
        self.counters.errors += 1
        self.counters.last_error = reason

    def _open(self) -> Context:
        """Return a freshly opened encoder."""
        ctx = av.CodecContext.create(self._spec.encoder, "w")
        assert isinstance(ctx, av.AudioCodecContext)
        ctx.sample_rate = self._rate
        ctx.layout = "mono"
        ctx.format = self._spec.sample_format
        ctx.time_base = Fraction(1, self._rate)
        ctx.bit_rate = self._bit_rate
        ctx.options = dict(self._spec.options)
        ctx.open()
        return ctx

    def _restart(self) -> None:
        """Forget the timeline and the buffers (after construction or an encoder error)."""
        self._fifo: Buffer = np.zeros(0, self._dtype)
        self._index = 0  # encoder input samples so far, silence included
        # (encoder index, output pts) where each timeline piece starts; a few at most:
        # each spans at least one frame, and the encoder holds two.
        self._segments: collections.deque[tuple[int, int]] = collections.deque()
        self._resampler: av.AudioResampler | None = None
        self._rs_in = self._rs_out = 0
        self._next_in: int | None = None
        self._faded = 0  # input samples of the fade-in done since the resampler opened

    def close(self) -> None:
        """Free the encoder and the resampler now (PyAV gives each a filter graph with two
        FFmpeg threads); the pipeline takes no more input."""
        self._closed = True
        self._resampler = None
        del self._encoder

    @property
    def _dtype(self) -> type[np.generic]:
        """Return the numpy type of the encoder's samples."""
        return np.float32 if self._spec.sample_format == "fltp" else np.int16

    def _feed(self, block: PcmBlock, samples: npt.NDArray[np.int16]) -> None:
        """Splice the block onto the timeline and encode it."""
        if len(samples) > self._max_block:
            raise RemoteProtocolError(f"audio block of {len(samples)} samples")
        if self._next_in is None:
            floor = None if self._out_end is None else self._out_end + self._config.priming
            start = block.pts * self._ratio
            self._segments.append((self._index, start if floor is None else max(start, floor)))
        elif block.discontinuity or block.pts != self._next_in:
            self.counters.discontinuities += 1
            self._splice(block.pts * self._ratio)
        for i in range(0, len(samples), _CHUNK):
            self._resample(samples[i : i + _CHUNK])
        self._next_in = block.pts + len(samples)
        self.counters.samples_in += len(samples)

    def _fill(self, pts: int) -> None:
        """Encode silence up to input pts ``pts`` (see ``fill_until``)."""
        if self._next_in is None:
            return
        target = pts * self._ratio
        gap = target - self._position()
        if gap <= 0:
            return
        if gap > self._max_gap * self._ratio:
            self._splice(target)
        else:
            self._end_piece()
            self._silence(gap)
        self._next_in = pts

    def _drain_all(self) -> None:
        """Encode the tail padded to a frame, then drain the encoder."""
        self._end_piece()
        self._silence(-len(self._fifo) % self._frame)
        self._emit(self._encoder.encode(None))

    def _position(self) -> int:
        """Return the output pts after the input so far (what the resampler holds included)."""
        index, out = self._segments[-1]
        return out + self._index - index + (self._rs_in * self._ratio - self._rs_out)

    def _splice(self, target: int) -> None:
        """End the current piece and continue the timeline at output pts ``target``."""
        self._end_piece()
        end = self._position()
        gap = target - end
        pad = (self._align - self._index) % self._frame
        if 0 <= gap < pad + self._frame:
            self._silence(gap)  # too short for a jump: keep the timeline exact
            return
        self._silence(pad)
        start = target if gap > 0 else end + pad
        if self._segments[-1][0] == self._index:
            self._segments.pop()  # an empty piece (two restarts in a row)
        self._segments.append((self._index, start))

    def _end_piece(self) -> None:
        """Drain the resampler exactly and fade out what is not yet encoded."""
        if self._resampler is None:
            return
        frames = self._resampler.resample(None)
        tail = [frame.to_ndarray().reshape(-1) for frame in frames]
        data = np.concatenate(tail) if tail else np.zeros(0, self._dtype)
        # swresample gives exactly ratio * n samples for n in; enforce it regardless.
        want = max(0, self._rs_in * self._ratio - self._rs_out)
        data = np.pad(data[:want], (0, max(0, want - len(data))))
        self._resampler = None
        self._rs_in = self._rs_out = 0
        self._append(data)
        fade = min(len(self._fifo), self._fade * self._ratio)
        if fade:
            ramp = (np.arange(fade, 0, -1) - 0.5) / fade
            self._fifo[-fade:] = (self._fifo[-fade:] * ramp).astype(self._dtype)
        self._faded = 0
        self._encode_frames()

    def _resample(self, samples: npt.NDArray[np.int16]) -> None:
        """Resample input samples into the encoder's buffer and encode whole frames."""
        if not len(samples):
            return
        if self._faded < self._fade:  # fading in, however short the blocks
            fade = min(len(samples), self._fade - self._faded)
            ramp = (np.arange(self._faded, self._faded + fade) + 0.5) / self._fade
            samples = samples.copy()
            samples[:fade] = (samples[:fade] * ramp).astype(np.int16)
            self._faded += fade
        if self._resampler is None:
            self._resampler = av.AudioResampler(
                format=self._spec.sample_format, layout="mono", rate=self._rate
            )
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = PCM_RATE
        self._rs_in += len(samples)
        for out in self._resampler.resample(frame):
            data = out.to_ndarray().reshape(-1)
            self._rs_out += len(data)
            self._append(data)
        self._encode_frames()

    def _silence(self, count: int) -> None:
        """Encode ``count`` output samples of silence (in bounded pieces)."""
        self.counters.silence_samples += count
        while count > 0:
            n = min(count, _CHUNK * self._ratio)
            self._append(np.zeros(n, self._dtype))
            self._encode_frames()
            count -= n

    def _append(self, data: Buffer) -> None:
        """Add samples to the encoder's buffer (at most a frame plus one chunk)."""
        self._fifo = np.concatenate((self._fifo, data.astype(self._dtype, copy=False)))
        self._index += len(data)

    def _encode_frames(self) -> None:
        """Encode every whole frame in the buffer."""
        fmt, size = self._spec.sample_format, self._frame
        start = self._index - len(self._fifo)
        done = 0
        while len(self._fifo) - done >= size:
            chunk = self._fifo[done : done + size].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="mono")
            frame.sample_rate = self._rate
            frame.time_base = Fraction(1, self._rate)
            frame.pts = start + done
            done += size
            self._emit(self._encoder.encode(frame))
        if done:
            self._fifo = self._fifo[done:].copy()

    def _emit(self, packets: list[av.Packet[Any]]) -> None:
        """Map the encoder's packets onto the output timeline."""
        for packet in packets:
            assert packet.pts is not None
            assert packet.duration is not None
            index = packet.pts  # encoder input index of the first sample it decodes to
            while len(self._segments) > 1 and self._segments[1][0] <= index:
                self._segments.popleft()
            seg_index, seg_out = self._segments[0]
            pts = seg_out + index - seg_index
            if self._out_end is not None and pts < self._out_end:
                self._fail(f"packet at {pts} overlaps the previous one (ends {self._out_end})")
                continue
            payload = bytes(packet)
            self._out.append(
                EncodedAudio(
                    payload,
                    pts,
                    packet.duration,
                    self._rate,
                    self._received_ns,
                    pts != self._out_end,
                )
            )
            self._out_end = pts + packet.duration
            self.counters.packets_out += 1
            self.counters.bytes_out += len(payload)
