"""Helpers of the audio encode tests: PCM blocks in, decoded audio out, measurements."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt

from gateway.transcode.audio import PcmBlock
from gateway.transcode.audio_codecs import AudioEncoderConfig, AudioEncoding, EncodedAudio
from gateway.transcode.audio_encode import AudioEncodePipeline

RATE_IN = 8000
PART = 512
#: FFmpeg decoder per rendition (the native ones, as a browser-independent reference).
DECODERS = {AudioEncoding.AAC: "aac", AudioEncoding.OPUS: "opus"}

Signal = npt.NDArray[np.float64]


def tone(frequency: float, start: int, count: int, *, level: float = 0.4) -> Signal:
    """Return count samples of a sine at frequency on the 8 kHz clock from input pts start."""
    n = np.arange(start, start + count)
    return np.sin(2 * np.pi * frequency * n / RATE_IN) * level * 32767


def noise(start: int, count: int, *, seed: int = 7) -> Signal:
    """Return count samples of white noise (deterministic per input pts) from start."""
    rng = np.random.default_rng(seed)
    # Generate from 0 so a given input pts always gets the same sample.
    return rng.normal(0, 4000, start + count)[start:]


def blocks(
    signal: Signal, start: int, *, size: int = PART, discontinuity: bool = False
) -> list[PcmBlock]:
    """Cut signal (first sample at input pts start) into blocks; flag the first if asked."""
    samples = np.clip(np.round(signal), -32768, 32767).astype(np.int16)
    out = []
    for i in range(0, len(samples), size):
        chunk = samples[i : i + size]
        chunk.flags.writeable = False
        first = discontinuity and i == 0
        out.append(
            PcmBlock(chunk, start + i, received_ns=1000 + i, seq=i // size, discontinuity=first)
        )
    return out


def feed_all(pipeline: AudioEncodePipeline, pcm: list[PcmBlock]) -> list[EncodedAudio]:
    """Feed every block; return every packet."""
    return [packet for block in pcm for packet in pipeline.feed(block)]


@dataclass
class Decoded:
    """Decoded packets placed on the output timeline (NaN where no packet covers)."""

    #: Output pts of ``samples[0]``.
    start: int
    #: The samples, scaled to int16 range.
    samples: Signal
    #: Samples each packet decoded to, in packet order.
    lengths: list[int]

    def at(self, pts: int, count: int) -> Signal:
        """Return count samples from output pts on."""
        return self.samples[pts - self.start : pts - self.start + count]


def decode(
    config: AudioEncoderConfig, encoding: AudioEncoding, packets: list[EncodedAudio]
) -> Decoded:
    """Decode packets with FFmpeg and place each packet's samples at its pts.

    A decoder drops the start of the first Opus packet (pre-skip): those samples end
    where their packet ends. A flushed Opus tail decodes to a whole frame of which only
    ``duration`` samples count.
    """
    ctx = av.CodecContext.create(DECODERS[encoding], "r")
    assert isinstance(ctx, av.AudioCodecContext)
    ctx.extradata = config.extradata
    ctx.sample_rate = config.sample_rate
    ctx.layout = "mono"
    start = packets[0].pts
    end = packets[-1].pts + packets[-1].duration
    out = np.full(end - start, np.nan)
    lengths = []
    for packet in packets:
        chunks = []
        for frame in ctx.decode(av.Packet(packet.payload)):
            data = frame.to_ndarray().reshape(-1).astype(np.float64)
            chunks.append(data * 32768 if frame.format.name.startswith("flt") else data)
        pcm = np.concatenate(chunks) if chunks else np.zeros(0)
        lengths.append(len(pcm))
        if len(pcm) < packet.duration:  # the front dropped: align the ends
            at = packet.pts + packet.duration - len(pcm)
        else:  # the end is past the packet's duration (a flushed Opus tail): cut it
            at, pcm = packet.pts, pcm[: packet.duration]
        out[at - start : at - start + len(pcm)] = pcm
    return Decoded(start, out, lengths)


def dominant_hz(samples: Signal, rate: int) -> float:
    """Return the frequency of the largest FFT bin (Hann window)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def lag(decoded: Signal, reference: Signal, ratio: int, *, search: int = 40) -> int:
    """Return the input-rate lag best aligning decoded (output rate) with reference (8 kHz).

    Positive: the decoded audio is late.
    """
    on_input_grid = decoded[::ratio][: len(reference)]
    span = len(on_input_grid) - 2 * search
    scores = [
        float(
            np.dot(on_input_grid[search + k : search + k + span], reference[search : search + span])
        )
        for k in range(-search, search + 1)
    ]
    return int(np.argmax(scores)) - search


def assert_continuous(packets: list[EncodedAudio]) -> None:
    """Assert each packet starts where the previous ended (the first is flagged)."""
    assert packets[0].discontinuity
    for before, after in itertools.pairwise(packets):
        assert after.pts == before.pts + before.duration, (before, after)
        assert not after.discontinuity


def assert_monotonic(packets: list[EncodedAudio]) -> None:
    """Assert no packet starts before the previous one ended; flags mark the jumps."""
    for before, after in itertools.pairwise(packets):
        assert after.pts >= before.pts + before.duration, (before, after)
        assert after.discontinuity == (after.pts != before.pts + before.duration)
