"""Audio decoder configurations: AAC AudioSpecificConfig and esds, OpusHead and dOps.

AAC in MP4 is described by an ``esds`` box (ISO/IEC 14496-14 §5.6) wrapping the MPEG-4
ES_Descriptor tree (ISO/IEC 14496-1 §7.2.6) around the AudioSpecificConfig (ISO/IEC
14496-3 §1.6.2.1). Opus is described by a ``dOps`` box ("Encapsulation of Opus in ISO
Base Media File Format" §4.3.2): the OpusHead fields of RFC 7845 §5.1, big-endian and
without the magic.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.mux.boxes import box, full_box, u16, u32

Buffer = bytes | bytearray | memoryview

#: AAC-LC's audioObjectType (ISO/IEC 14496-3 Table 1.17).
AAC_LC = 2
#: samplingFrequencyIndex values 0..12 (ISO/IEC 14496-3 Table 1.18); 15 = explicit rate.
AAC_SAMPLE_RATES = (
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350
)  # fmt: skip
#: The rate every Opus stream decodes at, and the timescale of an Opus track (§4.3.1).
OPUS_RATE = 48000
#: RFC 6381 / HLS CODECS value of an Opus track.
OPUS_CODEC_STRING = "opus"

# ES descriptor tags (ISO/IEC 14496-1 Table 1).
_ES_DESCR = 0x03
_DECODER_CONFIG = 0x04
_DEC_SPECIFIC = 0x05
_SL_CONFIG = 0x06
#: objectTypeIndication of MPEG-4 Audio (ISO/IEC 14496-1 Table 5; mp4ra "0x40").
_OTI_MPEG4_AUDIO = 0x40
#: streamType AudioStream (Table 6), shifted over upStream = 0 and reserved = 1.
_STREAM_TYPE_AUDIO = 0x05 << 2 | 0x01
#: SLConfigDescriptor predefined = 2: "reserved for use in MP4 files" (14496-14 §3.1.2).
_SL_PREDEFINED_MP4 = 2

_OPUS_MAGIC = b"OpusHead"
_OPUS_HEAD = struct.Struct("<BBHIhB")  # version, channels, pre_skip, rate, gain, family
_DOPS = struct.Struct(">BBHIhB")


@dataclass(frozen=True, slots=True)
class AacConfig:
    """The fields of an AudioSpecificConfig the gateway reads."""

    #: audioObjectType (2 = AAC-LC).
    object_type: int
    #: Sampling rate in Hz.
    sample_rate: int
    #: channelConfiguration (1 = mono, 2 = stereo; 0 = given by a program config element).
    channel_config: int


@dataclass(frozen=True, slots=True)
class OpusConfig:
    """The decoder configuration of an Opus stream (RFC 7845 §5.1 field by field)."""

    #: Output channel count.
    channels: int
    #: Samples at 48 kHz to discard from the start of the decoded output.
    pre_skip: int
    #: Sample rate of the encoder's input, informational only.
    input_sample_rate: int = OPUS_RATE
    #: Output gain in Q7.8 dB.
    output_gain: int = 0
    #: Channel mapping family (0: mono/stereo in one stream).
    mapping_family: int = 0
    #: Family != 0: streams per packet, coupled (stereo) streams, and the channel map.
    stream_count: int = 1
    coupled_count: int = 0
    mapping: bytes = b""


def audio_specific_config(sample_rate: int, channels: int, object_type: int = AAC_LC) -> bytes:
    """Return a two-byte AudioSpecificConfig for a rate of Table 1.18 and 1..7 channels."""
    if sample_rate not in AAC_SAMPLE_RATES or not 1 <= channels <= 7 or not 1 <= object_type < 31:
        raise LocalProtocolError(f"no AudioSpecificConfig for {sample_rate} Hz x {channels}")
    index = AAC_SAMPLE_RATES.index(sample_rate)
    # 5 bits object type, 4 bits frequency index, 4 bits channels, 3 bits GASpecificConfig 0.
    return (object_type << 11 | index << 7 | channels << 3).to_bytes(2, "big")


def parse_audio_specific_config(asc: Buffer) -> AacConfig:
    """Return the object type, rate and channel configuration of an AudioSpecificConfig."""
    data = bytes(asc[:8])
    if len(data) < 2:
        raise RemoteProtocolError("AudioSpecificConfig shorter than two bytes")
    bits = int.from_bytes(data, "big")
    left = len(data) * 8

    def take(count: int) -> int:
        nonlocal left
        if count > left:
            raise RemoteProtocolError("AudioSpecificConfig is truncated")
        left -= count
        return bits >> left & ((1 << count) - 1)

    object_type = take(5)
    if object_type == 31:  # audioObjectTypeExt (§1.6.2.1)
        object_type = 32 + take(6)
    index = take(4)
    if index == 15:
        rate = take(24)
    elif index < len(AAC_SAMPLE_RATES):
        rate = AAC_SAMPLE_RATES[index]
    else:
        raise RemoteProtocolError(f"AudioSpecificConfig frequency index {index} is reserved")
    if object_type == 0 or rate == 0:
        raise RemoteProtocolError("AudioSpecificConfig has no object type or rate")
    return AacConfig(object_type, rate, take(4))


def aac_codec_string(asc: Buffer | None = None) -> str:
    """Return the RFC 6381 string ``mp4a.40.<audioObjectType>`` (AAC-LC when ``asc`` is None)."""
    object_type = AAC_LC if asc is None else parse_audio_specific_config(asc).object_type
    return f"mp4a.40.{object_type}"


def esds_box(asc: Buffer, *, es_id: int = 0, avg_bitrate: int = 0, max_bitrate: int = 0) -> bytes:
    """Return the ``esds`` box carrying ``asc`` as MPEG-4 Audio (14496-14 §5.6.1)."""
    parse_audio_specific_config(asc)
    decoder_config = _descriptor(
        _DECODER_CONFIG,
        bytes((_OTI_MPEG4_AUDIO, _STREAM_TYPE_AUDIO)),
        (0).to_bytes(3, "big"),  # bufferSizeDB: unknown
        u32(max_bitrate),
        u32(avg_bitrate),
        _descriptor(_DEC_SPECIFIC, bytes(asc)),
    )
    es = _descriptor(
        _ES_DESCR,
        u16(es_id),  # 14496-14: 0 as stored (the track's ID is in tkhd)
        b"\x00",  # no streamDependence, URL or OCR stream; streamPriority 0
        decoder_config,
        _descriptor(_SL_CONFIG, bytes((_SL_PREDEFINED_MP4,))),
    )
    return full_box(b"esds", 0, 0, es)


def opus_head(channels: int, *, pre_skip: int = 312, input_sample_rate: int = OPUS_RATE) -> bytes:
    """Return a mapping-family-0 OpusHead (RFC 7845 §5.1) for one or two channels."""
    if channels not in (1, 2) or not 0 <= pre_skip <= 0xFFFF:
        raise LocalProtocolError(f"no family-0 OpusHead for {channels} channels")
    return _OPUS_MAGIC + _OPUS_HEAD.pack(1, channels, pre_skip, input_sample_rate, 0, 0)


def parse_opus_head(head: Buffer) -> OpusConfig:
    """Return the configuration in an OpusHead packet (an Opus encoder's extradata)."""
    data = bytes(head)
    if len(data) < 8 + _OPUS_HEAD.size or not data.startswith(_OPUS_MAGIC):
        raise RemoteProtocolError("not an OpusHead packet")
    version, channels, pre_skip, rate, gain, family = _OPUS_HEAD.unpack_from(data, 8)
    if version >> 4 != 0 or channels == 0:  # RFC 7845 §5.1: major version 0, >= 1 channel
        raise RemoteProtocolError(f"OpusHead version {version} / {channels} channels unsupported")
    if family == 0:
        if channels > 2:
            raise RemoteProtocolError("OpusHead family 0 allows at most two channels")
        return OpusConfig(channels, pre_skip, rate, gain)
    table = data[8 + _OPUS_HEAD.size :]
    if len(table) < 2 + channels or table[0] == 0 or table[1] > table[0]:
        raise RemoteProtocolError("OpusHead channel mapping table is malformed")
    mapping = table[2 : 2 + channels]
    return OpusConfig(channels, pre_skip, rate, gain, family, table[0], table[1], mapping)


def dops_box(config: OpusConfig) -> bytes:
    """Return the ``dOps`` box (OpusSpecificBox, a plain box: no version/flags header)."""
    fields = (config.channels, config.pre_skip, config.input_sample_rate, config.output_gain)
    try:
        fixed = _DOPS.pack(0, *fields, config.mapping_family)  # Version 0
        table = bytes((config.stream_count, config.coupled_count))
    except (struct.error, ValueError) as exc:
        raise LocalProtocolError(f"Opus configuration out of range: {config}") from exc
    if config.mapping_family == 0:
        return box(b"dOps", fixed)
    if len(config.mapping) != config.channels:
        raise LocalProtocolError("Opus channel mapping needs one entry per channel")
    return box(b"dOps", fixed, table, config.mapping)


def _descriptor(tag: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    # sizeOfInstance: 7 bits per byte, high bit = "more bytes follow" (14496-1 §8.3.3).
    size = len(body)
    encoded = [size & 0x7F]
    size >>= 7
    while size:
        encoded.append(0x80 | size & 0x7F)
        size >>= 7
    return bytes((tag, *reversed(encoded))) + body
