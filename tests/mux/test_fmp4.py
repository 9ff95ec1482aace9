"""The fMP4 writer: every box of init segments and fragments parsed back field by field."""

from __future__ import annotations

import pytest

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.mux import fmp4
from gateway.mux.tracks import AudioCodec, AudioTrack, VideoTrack, codec_string
from tests.mux.boxfields import FIELD_PARSERS
from tests.mux.boxreader import Box, parse, walk
from tests.mux.samples import ASC_48K_MONO, AVCC_HIGH, OPUS_HEAD_MONO, PPS_HIGH, SPS_HIGH

VIDEO = VideoTrack(track_id=1, width=320, height=240, avcc=AVCC_HIGH)
AAC = AudioTrack(
    track_id=2, codec=AudioCodec.AAC, sample_rate=48000, channels=1, config=ASC_48K_MONO
)
OPUS = AudioTrack(
    track_id=3, codec=AudioCodec.OPUS, sample_rate=48000, channels=1, config=OPUS_HEAD_MONO
)
UNITY = (0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def parsed(data: bytes) -> list[Box]:
    """Parse ``data`` and check that every box in it has a field parser (none skipped)."""
    tree = parse(data)
    unknown = {item.type for item in walk(tree)} - set(FIELD_PARSERS)
    assert not unknown
    return tree


def test_init_segment_video_and_aac() -> None:
    ftyp, moov = parsed(fmp4.init_segment([VIDEO, AAC]))
    assert ftyp.fields == {
        "major": b"iso6",
        "minor": 0,
        "compatible": [b"iso6", b"isom", b"mp41", b"avc1"],
    }
    assert [child.type for child in moov.children] == [b"mvhd", b"trak", b"trak", b"mvex"]
    assert moov.one("mvhd").fields == {
        "version": 0, "flags": 0, "created": 0, "modified": 0, "timescale": 1000, "duration": 0,
        "rate": 0x10000, "volume": 0x100, "reserved": bytes(10), "matrix": UNITY,
        "pre_defined": bytes(24), "next_track_id": 3,
    }  # fmt: skip
    video, sound = moov.find("trak")
    assert video.one("tkhd").fields == {
        "version": 0, "flags": 3, "created": 0, "modified": 0, "track_id": 1, "duration": 0,
        "layer": 0, "alternate_group": 0, "volume": 0, "matrix": UNITY,
        "width": 320 << 16, "height": 240 << 16, "reserved": (0, bytes(8), 0),
    }  # fmt: skip
    assert sound.one("tkhd").fields | {"width": 0, "height": 0} == sound.one("tkhd").fields
    assert sound.one("tkhd").fields["volume"] == 0x100
    assert sound.one("tkhd").fields["track_id"] == 2
    handlers = ((video, 90000, b"vide", "VideoHandler"), (sound, 48000, b"soun", "SoundHandler"))
    for trak, timescale, handler, name in handlers:
        assert trak.one("mdia/mdhd").fields == {
            "version": 0, "flags": 0, "timescale": timescale, "duration": 0, "created": 0,
            "modified": 0, "language": "und", "pad": 0, "pre_defined": 0,
        }  # fmt: skip
        assert trak.one("mdia/hdlr").fields == {
            "version": 0, "flags": 0, "pre_defined": 0, "handler": handler,
            "reserved": bytes(12), "name": name,
        }  # fmt: skip
        check_empty_tables(trak)
    minf = video.one("mdia/minf")
    assert [child.type for child in minf.children] == [b"vmhd", b"dinf", b"stbl"]
    assert minf.one("vmhd").fields == {
        "version": 0,
        "flags": 1,
        "graphicsmode": 0,
        "opcolor": (0, 0, 0),
    }
    assert sound.one("mdia/minf/smhd").fields == {
        "version": 0,
        "flags": 0,
        "balance": 0,
        "reserved": 0,
    }
    avc1 = video.one("mdia/minf/stbl/stsd/avc1")
    assert avc1.fields == {
        "reserved": bytes(6), "data_reference_index": 1, "pre_defined": bytes(16), "width": 320,
        "height": 240, "horizresolution": 0x480000, "vertresolution": 0x480000, "reserved2": 0,
        "frame_count": 1, "compressorname": bytes(32), "depth": 0x18, "pre_defined2": -1,
    }  # fmt: skip
    assert [child.type for child in avc1.children] == [b"avcC", b"pasp"]
    assert avc1.one("avcC").payload == AVCC_HIGH
    assert avc1.one("avcC").fields["sps"] == [SPS_HIGH]
    assert avc1.one("avcC").fields["pps"] == [PPS_HIGH]
    assert avc1.one("pasp").fields == {"h_spacing": 1, "v_spacing": 1}
    mp4a = sound.one("mdia/minf/stbl/stsd/mp4a")
    assert mp4a.fields == {
        "reserved": bytes(14), "data_reference_index": 1, "channels": 1, "sample_size": 16,
        "pre_defined": 0, "reserved3": 0, "sample_rate": 48000, "sample_rate_fraction": 0,
    }  # fmt: skip
    esds = mp4a.one("esds").fields
    assert (esds["object_type"], esds["stream_type"], esds["asc"]) == (0x40, 5, ASC_48K_MONO)
    trex = [item.fields for item in moov.find("mvex/trex")]
    assert trex == [
        {"version": 0, "flags": 0, "track_id": track_id, "sample_description_index": 1,
         "default_duration": 0, "default_size": 0, "default_flags": 0}
        for track_id in (1, 2)
    ]  # fmt: skip


def check_empty_tables(trak: Box) -> None:
    stbl = trak.one("mdia/minf/stbl")
    assert [child.type for child in stbl.children] == [b"stsd", b"stts", b"stsc", b"stsz", b"stco"]
    assert stbl.one("stsd").fields == {"version": 0, "flags": 0, "entry_count": 1}
    assert len(stbl.one("stsd").children) == 1
    for table in (b"stts", b"stsc", b"stco"):
        assert stbl.one(table.decode()).fields == {"version": 0, "flags": 0, "entry_count": 0}
    assert stbl.one("stsz").fields == {
        "version": 0,
        "flags": 0,
        "sample_size": 0,
        "sample_count": 0,
    }
    dref = trak.one("mdia/minf/dinf/dref")
    assert dref.fields == {"version": 0, "flags": 0, "entry_count": 1}
    assert dref.one("url ").fields == {"version": 0, "flags": 1, "location": b""}


def test_init_segment_opus_alone_is_cmaf() -> None:
    ftyp, moov = parsed(fmp4.init_segment([OPUS]))
    assert ftyp.fields["compatible"] == [b"iso6", b"isom", b"mp41", b"cmfc"]
    assert moov.one("mvhd").fields["next_track_id"] == 4
    entry = moov.one("trak/mdia/minf/stbl/stsd/Opus")
    assert entry.fields["channels"] == 1
    assert entry.fields["sample_rate"] == 48000
    assert entry.one("dOps").fields == {
        "version": 0, "channels": 1, "pre_skip": 312, "input_sample_rate": 48000,
        "output_gain": 0, "family": 0,
    }  # fmt: skip
    assert moov.one("trak/mdia/mdhd").fields["timescale"] == 48000


def test_init_segment_three_tracks_in_order() -> None:
    _, moov = parsed(fmp4.init_segment([AAC, VIDEO, OPUS]))
    assert [trak.one("tkhd").fields["track_id"] for trak in moov.find("trak")] == [2, 1, 3]
    assert [trex.fields["track_id"] for trex in moov.find("mvex/trex")] == [2, 1, 3]


def test_init_segment_rejects_misuse() -> None:
    with pytest.raises(LocalProtocolError, match="distinct track ids"):
        fmp4.init_segment([])
    with pytest.raises(LocalProtocolError, match="distinct track ids"):
        fmp4.init_segment([VIDEO, VideoTrack(1, 640, 480, AVCC_HIGH)])


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: VideoTrack(0, 320, 240, AVCC_HIGH), LocalProtocolError),
        (lambda: VideoTrack(1, 0, 240, AVCC_HIGH), LocalProtocolError),
        (lambda: VideoTrack(1, 320, 65536, AVCC_HIGH), LocalProtocolError),
        (lambda: VideoTrack(1, 320, 240, AVCC_HIGH, timescale=0), LocalProtocolError),
        (lambda: VideoTrack(1, 320, 240, b"\x01\x64"), RemoteProtocolError),
        (lambda: AudioTrack(2, AudioCodec.AAC, 44100, 1, ASC_48K_MONO), LocalProtocolError),
        (lambda: AudioTrack(2, AudioCodec.AAC, 96000, 1, ASC_48K_MONO), LocalProtocolError),
        (lambda: AudioTrack(2, AudioCodec.AAC, 48000, 0, ASC_48K_MONO), LocalProtocolError),
        (lambda: AudioTrack(2, AudioCodec.AAC, 48000, 1, b"\x11"), RemoteProtocolError),
        (lambda: AudioTrack(2, AudioCodec.OPUS, 24000, 1, OPUS_HEAD_MONO), LocalProtocolError),
        (lambda: AudioTrack(2, AudioCodec.OPUS, 48000, 2, OPUS_HEAD_MONO), LocalProtocolError),
        (lambda: AudioTrack(2, AudioCodec.OPUS, 48000, 1, ASC_48K_MONO), RemoteProtocolError),
        (lambda: AudioTrack(2, "mp3", 48000, 1, ASC_48K_MONO), ValueError),  # type: ignore[arg-type]
    ],
)
def test_tracks_reject_bad_descriptions(make: object, error: type[Exception]) -> None:
    assert callable(make)
    with pytest.raises(error):
        make()


def test_audio_codec_accepts_its_string_values() -> None:
    track = AudioTrack(2, "opus", 48000, 1, OPUS_HEAD_MONO)  # type: ignore[arg-type]
    assert track.codec is AudioCodec.OPUS
    assert track.timescale == 48000


def test_codec_strings() -> None:
    assert codec_string(VIDEO) == "avc1.64000d"
    assert codec_string(AAC) == "mp4a.40.2"
    assert codec_string(OPUS) == "opus"


def test_styp() -> None:
    (styp,) = parsed(fmp4.styp())
    assert styp.fields == {"major": b"iso6", "minor": 0, "compatible": [b"iso6"]}
    (part,) = parsed(fmp4.styp((fmp4.ISO6, fmp4.CMAF_CHUNK)))
    assert part.fields["compatible"] == [b"iso6", b"cmfl"]
    with pytest.raises(LocalProtocolError):
        fmp4.styp((b"iso",))
