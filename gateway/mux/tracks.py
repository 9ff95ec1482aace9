"""Track descriptions for the fMP4 writer: H.264 video, AAC or Opus audio, and their codecs."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.errors import LocalProtocolError
from gateway.mux import audio, h264


class AudioCodec(enum.StrEnum):
    """Audio codecs the writer can put in a track."""

    AAC = "aac"
    OPUS = "opus"


@dataclass(frozen=True, slots=True)
class VideoTrack:
    """An H.264 video track (sample entry ``avc1``, parameter sets in the ``avcC``)."""

    #: track_ID, 1 or more, unique in the init segment.
    track_id: int
    #: Coded picture size in pixels (tkhd and the sample entry).
    width: int
    height: int
    #: The AVCDecoderConfigurationRecord (``h264.avcc_from_parameter_sets``).
    avcc: bytes
    #: Units of sample durations and decode times: 90 kHz, the gateway's video clock.
    timescale: int = 90_000

    def __post_init__(self) -> None:
        _check_track(self.track_id, self.timescale)
        if not (0 < self.width <= 0xFFFF and 0 < self.height <= 0xFFFF):
            raise LocalProtocolError(f"video size {self.width}x{self.height} out of range")
        h264.parse_avcc(self.avcc)


@dataclass(frozen=True, slots=True)
class AudioTrack:
    """An AAC-LC (``mp4a`` + ``esds``) or Opus (``Opus`` + ``dOps``) audio track."""

    #: track_ID, 1 or more, unique in the init segment.
    track_id: int
    #: Which codec; the string values ``"aac"`` and ``"opus"`` are accepted as well.
    codec: AudioCodec
    #: Sample rate in Hz, and the track's timescale (48000 for Opus).
    sample_rate: int
    #: Channel count.
    channels: int
    #: AAC: the AudioSpecificConfig; Opus: the OpusHead (``audio.opus_head`` builds one).
    config: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "codec", AudioCodec(self.codec))
        _check_track(self.track_id, self.sample_rate)
        # AudioSampleEntry's samplerate is 16.16 fixed point (§12.2.3.2).
        if not (0 < self.sample_rate <= 0xFFFF and 0 < self.channels <= 0xFFFF):
            raise LocalProtocolError(f"{self.sample_rate} Hz x {self.channels} out of range")
        if self.codec is AudioCodec.AAC:
            rate = audio.parse_audio_specific_config(self.config).sample_rate
            if rate != self.sample_rate:
                raise LocalProtocolError(f"AudioSpecificConfig says {rate} Hz")
        else:
            if self.sample_rate != audio.OPUS_RATE:
                raise LocalProtocolError("an Opus track's timescale must be 48000")
            if audio.parse_opus_head(self.config).channels != self.channels:
                raise LocalProtocolError("OpusHead channel count differs from the track's")

    @property
    def timescale(self) -> int:
        """Return the track's timescale: its sample rate."""
        return self.sample_rate


Track = VideoTrack | AudioTrack


def codec_string(track: Track) -> str:
    """Return the RFC 6381 codecs value of ``track`` (HLS CODECS, MSE ``isTypeSupported``)."""
    if isinstance(track, VideoTrack):
        config = h264.parse_avcc(track.avcc)
        profile, flags, level = config.profile_idc, config.profile_compatibility, config.level_idc
        return f"avc1.{profile:02x}{flags:02x}{level:02x}"
    if track.codec is AudioCodec.AAC:
        return audio.aac_codec_string(track.config)
    return audio.OPUS_CODEC_STRING


def _check_track(track_id: int, timescale: int) -> None:
    if not 0 < track_id <= 0xFFFF_FFFF:  # track_ID 0 is reserved (§8.3.2.3)
        raise LocalProtocolError(f"track id {track_id} out of range")
    if not 0 < timescale <= 0xFFFF_FFFF:
        raise LocalProtocolError(f"timescale {timescale} out of range")
