"""Fragmented MP4 / CMAF writer: init segment (ftyp + moov), fragments (moof + mdat), styp.

The tracks are described by ``gateway.mux.tracks``.

Sans-IO and stateless: the caller keeps the sequence numbers and decode times (so one
fragment's bytes can be shared by every viewer that has seen the same init segment) and
writes the returned parts with ``writev``. Box layouts follow ISO/IEC 14496-12; the
choices a player cares about are what Chromium's MSE parser, Safari and FFmpeg's mov
demuxer accept for live fragmented streams: durations 0 and empty sample tables in the
``moov`` (everything lives in fragments), ``tfhd`` with default-base-is-moof and no
base_data_offset, ``tfdt`` version 1, and a ``trun`` with a data offset and every
sample's duration, size and flags.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.errors import LocalProtocolError
from gateway.media import Payload
from gateway.mux import audio
from gateway.mux.boxes import (
    FULL_BOX_HEADER,
    UNITY_MATRIX,
    box,
    box_header,
    container,
    fixed16_16,
    full_box,
    language,
    u16,
    u32,
)
from gateway.mux.tracks import AudioCodec, AudioTrack, Track, VideoTrack

#: Brands. ``iso6`` is a 14496-12 (Annex E) brand recent enough to cover what the
#: fragments use (default-base-is-moof, tfdt), as other live fMP4 muxers declare;
#: ``isom`` and ``mp41`` are what older readers (VLC, FFmpeg's mov demuxer, QuickTime)
#: look for in an MP4; ``avc1`` declares 14496-15 AVC tracks; ``cmfc`` (CMAF, ISO/IEC
#: 23000-19) allows one track per file, so only single-track init segments (an LL-HLS
#: rendition) declare it. Chromium's MSE parser and hls.js do not check brands at all.
ISO6 = b"iso6"
ISOM = b"isom"
MP41 = b"mp41"
AVC1 = b"avc1"
CMAF = b"cmfc"
#: styp compatible brands of a CMAF segment and of a CMAF chunk (an LL-HLS part).
CMAF_SEGMENT = b"cmfs"
CMAF_CHUNK = b"cmfl"

#: trun sample_flags (14496-12 §8.8.3.1): sample_depends_on = 2 (an I picture / any
#: audio frame); sample_depends_on = 1 plus sample_is_non_sync_sample.
SYNC_SAMPLE_FLAGS = 0x0200_0000
NON_SYNC_SAMPLE_FLAGS = 0x0101_0000
#: tfhd flag: data offsets count from the start of this moof (§8.8.7.1).
DEFAULT_BASE_IS_MOOF = 0x02_0000
#: trun flags (§8.8.8.1).
TRUN_DATA_OFFSET = 0x000001
TRUN_DURATION = 0x000100
TRUN_SIZE = 0x000200
TRUN_FLAGS = 0x000400
TRUN_COMPOSITION_OFFSET = 0x000800
#: tkhd flags: track_enabled | track_in_movie (§8.3.2.1).
TRACK_ENABLED_IN_MOVIE = 0x000003

#: The movie timescale: only mvhd uses it, and its duration is 0.
MOVIE_TIMESCALE = 1000
#: The largest trun data_offset (a signed 32-bit field).
MAX_DATA_OFFSET = 0x7FFF_FFFF

_VIDEO_HANDLER = (b"vide", b"VideoHandler\x00")
_SOUND_HANDLER = (b"soun", b"SoundHandler\x00")
_TRUN_ALWAYS = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS
# The per-frame path packs the fixed boxes of a moof in one struct call per traf rather
# than box by box (a fragment costs ~5x less): moof header + mfhd (§8.8.4, §8.8.5), then
# per traf its header, tfhd with track_ID only (§8.8.7), tfdt v1 (§8.8.12) and the trun
# header up to data_offset (§8.8.8); the sample table follows each traf head.
_MOOF_HEAD = struct.Struct(">I4s" + "I4sII")
_TRAF_HEAD = struct.Struct(">I4s" + "I4sII" + "I4sIQ" + "I4sIIi")
_VERSION_1 = 1 << 24  # a full box's version byte, over its 24 flag bits
_MFHD_SIZE = FULL_BOX_HEADER + 4
_TFHD_SIZE = FULL_BOX_HEADER + 4
_TFDT_SIZE = FULL_BOX_HEADER + 8
_TRUN_FIXED = FULL_BOX_HEADER + 8


@dataclass(frozen=True, slots=True)
class Sample:
    """One access unit: a length-prefixed H.264 picture, or one audio frame."""

    #: The sample's bytes, written as they are (never copied into the fragment).
    data: Payload
    #: Duration in the track's timescale (the next sample's decode time minus this one's).
    duration: int
    #: True for an IDR picture and for every audio frame.
    keyframe: bool = True
    #: Presentation time minus decode time, in the track's timescale (0 without B-frames).
    composition_offset: int = 0


@dataclass(frozen=True, slots=True)
class TrackRun:
    """Consecutive samples of one track, written as one ``traf`` of a fragment."""

    #: The track's track_ID.
    track_id: int
    #: Decode time of the first sample, in the track's timescale (tfdt).
    base_decode_time: int
    #: The samples in decode order; at least one.
    samples: Sequence[Sample]


def ftyp(tracks: Sequence[Track]) -> bytes:
    """Return the ``ftyp`` box for an init segment holding ``tracks``."""
    brands = [ISO6, ISOM, MP41]
    if any(isinstance(track, VideoTrack) for track in tracks):
        brands.append(AVC1)
    if len(tracks) == 1:
        brands.append(CMAF)
    return box(b"ftyp", ISO6, u32(0), *brands)


def styp(compatible: Sequence[bytes] = (ISO6,)) -> bytes:
    """Return a ``styp`` box (§8.16.2) to start an HLS segment or part, major brand ``iso6``.

    Players ignore it; pass ``(ISO6, CMAF_SEGMENT)`` or ``(ISO6, CMAF_CHUNK)`` for a CMAF
    rendition.
    """
    for brand in compatible:
        if len(brand) != 4:
            raise LocalProtocolError(f"brand must be 4 bytes, got {brand!r}")
    return box(b"styp", ISO6, u32(0), *compatible)


def init_segment(tracks: Sequence[Track]) -> bytes:
    """Return the init segment (``ftyp`` + ``moov``) describing ``tracks`` in that order."""
    ids = [track.track_id for track in tracks]
    if not ids or len(set(ids)) != len(ids):
        raise LocalProtocolError(f"an init segment needs distinct track ids, got {ids}")
    mvhd = full_box(
        b"mvhd",
        0,
        0,
        u32(0),  # creation_time
        u32(0),  # modification_time
        u32(MOVIE_TIMESCALE),
        u32(0),  # duration: unknown (live)
        u32(0x0001_0000),  # rate 1.0
        u16(0x0100),  # volume 1.0
        bytes(10),  # reserved
        UNITY_MATRIX,
        bytes(24),  # pre_defined
        u32(max(ids) + 1),  # next_track_ID
    )
    mvex = container(b"mvex", (_trex(track_id) for track_id in ids))
    moov = container(b"moov", (mvhd, *(_trak(track) for track in tracks), mvex))
    return ftyp(tracks) + moov


def fragment(sequence_number: int, runs: Sequence[TrackRun]) -> list[Payload]:
    """Return one ``moof`` + ``mdat`` as parts to write in order.

    The first part holds the moof and the mdat header; the samples' own payloads follow,
    uncopied, in run order (zero-length payloads are left out).
    """
    if not runs or any(not run.samples for run in runs):
        raise LocalProtocolError("a fragment needs at least one run, each with samples")
    # Sizes first: every trun's data_offset depends on the size of the whole moof.
    signed = [any(sample.composition_offset for sample in run.samples) for run in runs]
    data_sizes = [sum(len(sample.data) for sample in run.samples) for run in runs]
    traf_sizes = [
        _TRAF_HEAD.size + (16 if cto else 12) * len(run.samples)
        for run, cto in zip(runs, signed, strict=True)
    ]
    moof_size = _MOOF_HEAD.size + sum(traf_sizes)
    mdat_header = box_header(b"mdat", sum(data_sizes))
    offset = moof_size + len(mdat_header)
    try:
        pieces = [_MOOF_HEAD.pack(moof_size, b"moof", _MFHD_SIZE, b"mfhd", 0, sequence_number)]
        for run, cto, traf_size, data_size in zip(
            runs, signed, traf_sizes, data_sizes, strict=True
        ):
            if offset > MAX_DATA_OFFSET:
                raise LocalProtocolError("fragment too large for a 32-bit trun data_offset")
            pieces += _traf(run, cto, traf_size, offset)
            offset += data_size
    except struct.error as exc:
        raise LocalProtocolError(f"a fragment field is out of range: {exc}") from exc
    pieces.append(mdat_header)
    parts: list[Payload] = [b"".join(pieces)]
    parts.extend(sample.data for run in runs for sample in run.samples if len(sample.data))
    return parts


def _trak(track: Track) -> bytes:
    video = isinstance(track, VideoTrack)
    width, height = (track.width, track.height) if isinstance(track, VideoTrack) else (0, 0)
    tkhd = full_box(
        b"tkhd",
        0,
        TRACK_ENABLED_IN_MOVIE,
        u32(0),  # creation_time
        u32(0),  # modification_time
        u32(track.track_id),
        u32(0),  # reserved
        u32(0),  # duration
        bytes(8),  # reserved
        u16(0),  # layer
        u16(0),  # alternate_group
        u16(0 if video else 0x0100),  # volume: 1.0 for audio tracks
        u16(0),  # reserved
        UNITY_MATRIX,
        fixed16_16(width),
        fixed16_16(height),
    )
    mdhd = full_box(b"mdhd", 0, 0, u32(0), u32(0), u32(track.timescale), u32(0), language(), u16(0))
    handler, name = _VIDEO_HANDLER if video else _SOUND_HANDLER
    hdlr = full_box(b"hdlr", 0, 0, u32(0), handler, bytes(12), name)
    if video:
        media_header = full_box(b"vmhd", 0, 1, u16(0), bytes(6))  # flags 1 (§12.1.2.2)
    else:
        media_header = full_box(b"smhd", 0, 0, u16(0), u16(0))  # balance, reserved
    dref = full_box(b"dref", 0, 0, u32(1), full_box(b"url ", 0, 1))  # 1 = media in this file
    stbl = container(
        b"stbl",
        (
            full_box(b"stsd", 0, 0, u32(1), _sample_entry(track)),
            full_box(b"stts", 0, 0, u32(0)),
            full_box(b"stsc", 0, 0, u32(0)),
            full_box(b"stsz", 0, 0, u32(0), u32(0)),
            full_box(b"stco", 0, 0, u32(0)),
        ),
    )
    minf = container(b"minf", (media_header, box(b"dinf", dref), stbl))
    return container(b"trak", (tkhd, container(b"mdia", (mdhd, hdlr, minf))))


def _sample_entry(track: Track) -> bytes:
    if isinstance(track, VideoTrack):
        return _avc1(track)
    return _AUDIO_ENTRIES[track.codec](track)


def _avc1(track: VideoTrack) -> bytes:
    return box(
        b"avc1",
        bytes(6),  # reserved
        u16(1),  # data_reference_index
        bytes(16),  # pre_defined, reserved, pre_defined[3]
        u16(track.width),
        u16(track.height),
        u32(0x0048_0000),  # horizresolution 72 dpi
        u32(0x0048_0000),  # vertresolution 72 dpi
        u32(0),  # reserved
        u16(1),  # frame_count
        bytes(32),  # compressorname: empty
        u16(0x0018),  # depth: colour, no alpha
        u16(0xFFFF),  # pre_defined = -1
        box(b"avcC", track.avcc),
        box(b"pasp", u32(1), u32(1)),  # square pixels (CMAF asks for pasp)
    )


def _audio_entry(track: AudioTrack, entry_type: bytes, config_box: bytes) -> bytes:
    return box(
        entry_type,
        bytes(6),  # reserved
        u16(1),  # data_reference_index
        bytes(8),  # reserved
        u16(track.channels),
        u16(16),  # samplesize
        u16(0),  # pre_defined
        u16(0),  # reserved
        fixed16_16(track.sample_rate),
        config_box,
    )


def _mp4a(track: AudioTrack) -> bytes:
    return _audio_entry(track, b"mp4a", audio.esds_box(track.config))


def _opus(track: AudioTrack) -> bytes:
    return _audio_entry(track, b"Opus", audio.dops_box(audio.parse_opus_head(track.config)))


_AUDIO_ENTRIES: dict[AudioCodec, Callable[[AudioTrack], bytes]] = {
    AudioCodec.AAC: _mp4a,
    AudioCodec.OPUS: _opus,
}


def _trex(track_id: int) -> bytes:
    # Defaults stay 0: every fragment states each sample's duration, size and flags.
    return full_box(b"trex", 0, 0, u32(track_id), u32(1), u32(0), u32(0), u32(0))


def _traf(run: TrackRun, signed: bool, traf_size: int, data_offset: int) -> tuple[bytes, bytes]:
    """Return a traf's fixed boxes (traf, tfhd, tfdt and trun headers) and its sample table."""
    count = len(run.samples)
    per_sample = 16 if signed else 12
    # Version 1 makes composition offsets signed (what CMAF asks for); unused without them.
    trun_flags = (_VERSION_1 | _TRUN_ALWAYS | TRUN_COMPOSITION_OFFSET) if signed else _TRUN_ALWAYS
    head = _TRAF_HEAD.pack(
        traf_size, b"traf",
        _TFHD_SIZE, b"tfhd", DEFAULT_BASE_IS_MOOF, run.track_id,
        _TFDT_SIZE, b"tfdt", _VERSION_1, run.base_decode_time,  # 64-bit decode time
        _TRUN_FIXED + per_sample * count, b"trun", trun_flags, count, data_offset,
    )  # fmt: skip
    values: list[int] = []
    for sample in run.samples:
        values.append(sample.duration)
        values.append(len(sample.data))
        values.append(SYNC_SAMPLE_FLAGS if sample.keyframe else NON_SYNC_SAMPLE_FLAGS)
        if signed:
            values.append(sample.composition_offset)
    return head, struct.pack(">" + ("IIIi" if signed else "III") * count, *values)
