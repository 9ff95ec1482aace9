"""Audio renditions' vocabulary: codecs, encoder settings, packets, config, counters.

Encoder settings (measured on a 2-core machine, tones and noise band-limited to 4 kHz):

- AAC at 48 kHz, not 16 kHz. Both play in Chromium MSE, Safari and ffmpeg, but AAC-LC
  at 16-24 kHz is the window where HE-AAC hides behind plain LC (implicit SBR
  signalling, ISO/IEC 14496-3 §1.6.5), and some decoders answer it with a doubled
  output rate; 48 kHz is outside it and is the rate WebRTC's Opus uses. A 1024-sample
  frame lasts 21 ms at 48 kHz against 64 ms at 16 kHz, so the encoder's latency (two
  frames) drops from 128 to 43 ms and LL-HLS parts cut finer. The cost is about 1.5 ms
  more CPU per second of audio (3.4 against 1.9 ms, ``benchmarks/bench_audio_encode.py``):
  a third of a percent of a core.
- ``cutoff`` 4 kHz for both codecs: the source has nothing above; told so, the
  encoders spend their bits below it (AAC at 32 kbit/s: 30 dB SNR on a tone, 7 dB
  without). AAC runs at 48 kbit/s, Opus at 32 kbit/s constrained VBR (a pure tone
  drives unconstrained VBR to twice the target).
- Opus ``application=lowdelay`` (CELT only): 2.5 ms look-ahead against 6.5 ms for
  ``voip``, camera microphones carry ambient sound more than speech (SILK's model), it
  keeps the waveform's timing (noise cross-correlates at lag 0; ``voip``: +-1..6
  samples), and its encoder costs 2-3 ms CPU per second against 4-8. It forgoes SILK's
  in-band FEC.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

import av

from gateway.errors import LocalProtocolError

from .audio import PCM_RATE

#: AAC sampling frequency index per rate (ISO/IEC 14496-3 Table 1.18), multiples of 8 kHz.
_AAC_RATE_INDEX: Final = {48000: 3, 32000: 5, 24000: 6, 16000: 8, 8000: 11}
#: AudioObjectType of AAC-LC (ISO/IEC 14496-3 Table 1.17).
_AOT_AAC_LC: Final = 2
#: FFmpeg's AAC encoder delays its output by one frame (``initial_padding``).
_AAC_PRIMING: Final = 1024


class AudioEncoding(enum.Enum):
    """An audio rendition's codec."""

    AAC = "aac"
    OPUS = "opus"


@dataclass(frozen=True, slots=True)
class EncodedAudio:
    """One encoded packet on the output timeline."""

    #: The codec's packet (raw AAC access unit, or one Opus packet).
    payload: bytes
    #: Where the first sample it decodes to belongs, in ``1 / sample_rate`` (priming
    #: included, so negative for the first packet of a timeline starting near 0).
    pts: int
    #: Samples it decodes to.
    duration: int
    #: Samples per second of ``pts`` and ``duration``.
    sample_rate: int
    #: ``PcmBlock.received_ns`` of the block that completed it (or the ``fill_until`` one).
    received_ns: int
    #: True when it does not start where the previous packet ended (and for the first).
    discontinuity: bool = False

    @property
    def time_base(self) -> Fraction:
        """Return the unit of ``pts``."""
        return Fraction(1, self.sample_rate)


@dataclass(frozen=True, slots=True)
class AudioEncoderConfig:
    """What a container or SDP needs to describe the packets."""

    #: RFC 6381 ``codecs`` value: ``mp4a.40.2`` (AAC-LC) or ``opus``.
    codec: str
    #: Output samples per second.
    sample_rate: int
    #: Output channels.
    channels: int
    #: Encoder delay at the start of a timeline, samples (AAC 1024; Opus pre-skip).
    priming: int
    #: AAC: the AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) for ``esds``;
    #: Opus: the OpusHead (RFC 7845 §5.1), whose fields ``dOps`` repeats.
    extradata: bytes
    #: Target bit rate, bits per second (``esds`` avgBitrate, HLS BANDWIDTH).
    bit_rate: int
    #: Sample rate of the camera's audio (OpusHead / ``dOps`` InputSampleRate).
    input_sample_rate: int = PCM_RATE


@dataclass(slots=True)
class AudioEncodeCounters:
    """What one pipeline did, for ``/api`` and ``/metrics``."""

    #: Blocks fed.
    blocks_in: int = 0
    #: Input samples encoded (8 kHz).
    samples_in: int = 0
    #: Packets handed back.
    packets_out: int = 0
    #: Payload bytes handed back.
    bytes_out: int = 0
    #: Output-rate samples of silence encoded (``fill_until``, short gaps, padding).
    silence_samples: int = 0
    #: Blocks that did not continue the previous one (flagged, or pts mismatch).
    discontinuities: int = 0
    #: Blocks dropped or encoder failures (the encoder is then reopened).
    errors: int = 0
    #: Time spent in ``feed``, ``fill_until`` and ``flush``, nanoseconds.
    encode_ns_total: int = 0
    #: Why the most recent error happened.
    last_error: str | None = None

    def snapshot(self) -> dict[str, object]:
        """Return the counters as a JSON-ready dict (with encode ms per audio second)."""
        seconds = self.samples_in / PCM_RATE
        per_second = self.encode_ns_total / 1e6 / seconds if seconds else 0.0
        return {
            "blocks_in": self.blocks_in,
            "samples_in": self.samples_in,
            "packets_out": self.packets_out,
            "bytes_out": self.bytes_out,
            "silence_samples": self.silence_samples,
            "discontinuities": self.discontinuities,
            "errors": self.errors,
            "encode_seconds_total": self.encode_ns_total / 1e9,
            "encode_ms_per_audio_second": round(per_second, 3),
            "last_error": self.last_error,
        }


Context = av.AudioCodecContext


def _aac_config(ctx: Context, rate: int) -> tuple[bytes, int]:
    """Return FFmpeg's AudioSpecificConfig, checked, and the AAC priming."""
    asc = bytes(ctx.extradata or b"")
    if len(asc) < 2:
        raise LocalProtocolError("aac encoder gave no AudioSpecificConfig")
    aot, index, channels = asc[0] >> 3, (asc[0] & 7) << 1 | asc[1] >> 7, asc[1] >> 3 & 15
    if (aot, index, channels) != (_AOT_AAC_LC, _AAC_RATE_INDEX[rate], 1):
        raise LocalProtocolError(f"aac encoder gave AudioSpecificConfig {asc.hex()}")
    return asc, _AAC_PRIMING


def _opus_config(ctx: Context, rate: int) -> tuple[bytes, int]:
    """Return libopus's OpusHead with the camera's input rate, and its pre-skip."""
    head = bytes(ctx.extradata or b"")
    if len(head) < 19 or head[:8] != b"OpusHead" or head[9] != 1:
        raise LocalProtocolError(f"libopus gave OpusHead {head.hex()}")
    # RFC 7845 §5.1: the input sample rate is informational; say what the camera sent.
    return head[:12] + PCM_RATE.to_bytes(4, "little") + head[16:19], head[10] | head[11] << 8


@dataclass(frozen=True, slots=True)
class CodecSpec:
    """How one ``AudioEncoding`` is made."""

    #: FFmpeg encoder name.
    encoder: str
    #: Sample format the encoder takes (and the resampler makes).
    sample_format: str
    #: RFC 6381 codec string.
    codec: str
    #: Output rates allowed; the first is the default.
    rates: tuple[int, ...]
    #: Default bit rate, bits per second.
    bit_rate: int
    #: Encoder options.
    options: dict[str, str]
    #: Reads (extradata, priming) off the opened encoder.
    config: Callable[[Context, int], tuple[bytes, int]]


CODEC_SPECS: Final = {
    AudioEncoding.AAC: CodecSpec(
        encoder="aac",
        sample_format="fltp",
        codec="mp4a.40.2",
        rates=tuple(_AAC_RATE_INDEX),
        bit_rate=48000,
        options={"cutoff": str(PCM_RATE // 2)},
        config=_aac_config,
    ),
    AudioEncoding.OPUS: CodecSpec(
        encoder="libopus",
        sample_format="s16",
        codec="opus",
        # RFC 7587 §4.1: Opus in RTP always runs a 48 kHz clock.
        rates=(48000,),
        bit_rate=32000,
        options={
            "application": "lowdelay",
            "frame_duration": "60",
            "vbr": "constrained",
            "cutoff": str(PCM_RATE // 2),
        },
        config=_opus_config,
    ),
}
