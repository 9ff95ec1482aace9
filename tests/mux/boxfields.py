"""Field parsers of the test box reader: one per box type the writer emits."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

Fields = dict[str, Any]


class BoxError(AssertionError):
    """The bytes are not the boxes the writer should have produced."""


class Cursor:
    """Read big-endian fields from a box payload."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> Any:
        st = struct.Struct(">" + fmt)
        if self.pos + st.size > len(self.data):
            raise BoxError(f"payload ends reading {fmt}")
        values = st.unpack_from(self.data, self.pos)
        self.pos += st.size
        return values[0] if len(values) == 1 else values

    def raw(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise BoxError(f"payload ends reading {count} bytes")
        out = self.data[self.pos : self.pos + count]
        self.pos += count
        return out

    def rest(self) -> bytes:
        return self.raw(len(self.data) - self.pos)

    def full(self) -> tuple[int, int]:
        word = self.take("I")
        return word >> 24, word & 0xFFFFFF


def _brands(c: Cursor) -> Fields:
    major, minor = c.take("4sI")
    rest = c.rest()
    if len(rest) % 4:
        raise BoxError("brand list not a multiple of 4")
    return {
        "major": major,
        "minor": minor,
        "compatible": [rest[i : i + 4] for i in range(0, len(rest), 4)],
    }


def _mvhd(c: Cursor) -> Fields:
    version, flags = c.full()
    created, modified, timescale, duration, rate, volume = c.take("IIIIIH")
    reserved = c.raw(10)
    matrix = c.take("9I")
    pre_defined = c.raw(24)
    return {
        "version": version,
        "flags": flags,
        "created": created,
        "modified": modified,
        "timescale": timescale,
        "duration": duration,
        "rate": rate,
        "volume": volume,
        "reserved": reserved,
        "matrix": matrix,
        "pre_defined": pre_defined,
        "next_track_id": c.take("I"),
    }


def _tkhd(c: Cursor) -> Fields:
    version, flags = c.full()
    created, modified, track_id, reserved1, duration = c.take("IIIII")
    reserved2 = c.raw(8)
    layer, group, volume, reserved3 = c.take("hhHH")
    matrix = c.take("9I")
    width, height = c.take("II")
    return {
        "version": version,
        "flags": flags,
        "created": created,
        "modified": modified,
        "track_id": track_id,
        "duration": duration,
        "layer": layer,
        "alternate_group": group,
        "volume": volume,
        "matrix": matrix,
        "width": width,
        "height": height,
        "reserved": (reserved1, reserved2, reserved3),
    }


def _mdhd(c: Cursor) -> Fields:
    version, flags = c.full()
    created, modified, timescale, duration, lang, pre = c.take("IIIIHH")
    letters = "".join(chr((lang >> shift & 0x1F) + 0x60) for shift in (10, 5, 0))
    return {
        "version": version,
        "flags": flags,
        "timescale": timescale,
        "duration": duration,
        "created": created,
        "modified": modified,
        "language": letters,
        "pad": lang >> 15,
        "pre_defined": pre,
    }


def _hdlr(c: Cursor) -> Fields:
    version, flags = c.full()
    pre, handler = c.take("I4s")
    reserved = c.raw(12)
    name = c.rest()
    if not name.endswith(b"\x00"):
        raise BoxError("hdlr name not NUL-terminated")
    return {
        "version": version,
        "flags": flags,
        "pre_defined": pre,
        "handler": handler,
        "reserved": reserved,
        "name": name[:-1].decode(),
    }


def _vmhd(c: Cursor) -> Fields:
    version, flags = c.full()
    mode, r, g, b = c.take("HHHH")
    return {"version": version, "flags": flags, "graphicsmode": mode, "opcolor": (r, g, b)}


def _smhd(c: Cursor) -> Fields:
    version, flags = c.full()
    balance, reserved = c.take("hH")
    return {"version": version, "flags": flags, "balance": balance, "reserved": reserved}


def _count_only(c: Cursor) -> Fields:
    version, flags = c.full()
    return {"version": version, "flags": flags, "entry_count": c.take("I")}


def _url(c: Cursor) -> Fields:
    version, flags = c.full()
    return {"version": version, "flags": flags, "location": c.rest()}


def _stsz(c: Cursor) -> Fields:
    version, flags = c.full()
    size, count = c.take("II")
    return {"version": version, "flags": flags, "sample_size": size, "sample_count": count}


def _avc1(c: Cursor) -> Fields:
    reserved = c.raw(6)
    dri = c.take("H")
    pre = c.raw(16)
    width, height, hres, vres, reserved2, frames = c.take("HHIIIH")
    compressor = c.raw(32)
    depth, pre2 = c.take("Hh")
    return {
        "reserved": reserved,
        "data_reference_index": dri,
        "pre_defined": pre,
        "width": width,
        "height": height,
        "horizresolution": hres,
        "vertresolution": vres,
        "reserved2": reserved2,
        "frame_count": frames,
        "compressorname": compressor,
        "depth": depth,
        "pre_defined2": pre2,
    }


def _avcc(c: Cursor) -> Fields:
    version, profile, compat, level, length_byte, sps_byte = c.take("BBBBBB")
    sps = [c.raw(c.take("H")) for _ in range(sps_byte & 0x1F)]
    pps = [c.raw(c.take("H")) for _ in range(c.take("B"))]
    return {
        "version": version,
        "profile": profile,
        "compat": compat,
        "level": level,
        "length_size": (length_byte & 3) + 1,
        "length_reserved": length_byte >> 2,
        "sps_reserved": sps_byte >> 5,
        "sps": sps,
        "pps": pps,
        "ext": c.rest(),
    }


def _pasp(c: Cursor) -> Fields:
    h, v = c.take("II")
    return {"h_spacing": h, "v_spacing": v}


def _audio_entry(c: Cursor) -> Fields:
    reserved = c.raw(6)
    dri = c.take("H")
    reserved2 = c.raw(8)
    channels, sample_size, pre, reserved3, rate = c.take("HHHHI")
    return {
        "reserved": reserved + reserved2,
        "data_reference_index": dri,
        "channels": channels,
        "sample_size": sample_size,
        "pre_defined": pre,
        "reserved3": reserved3,
        "sample_rate": rate >> 16,
        "sample_rate_fraction": rate & 0xFFFF,
    }


def _descriptor(c: Cursor) -> tuple[int, Cursor]:
    tag = c.take("B")
    size = 0
    for _ in range(4):
        byte = c.take("B")
        size = size << 7 | byte & 0x7F
        if not byte & 0x80:
            return tag, Cursor(c.raw(size))
    raise BoxError("descriptor size longer than 4 bytes")


def _esds(c: Cursor) -> Fields:
    version, flags = c.full()
    tag, es = _descriptor(c)
    if tag != 3:
        raise BoxError(f"esds holds tag {tag}, not an ES_Descriptor")
    es_id, es_flags = es.take("HB")
    tag, dcd = _descriptor(es)
    if tag != 4 or es_flags:
        raise BoxError("ES_Descriptor: unexpected flags or no DecoderConfigDescriptor")
    oti, stream_byte = dcd.take("BB")
    buffer_size = int.from_bytes(dcd.raw(3), "big")
    max_bitrate, avg_bitrate = dcd.take("II")
    tag, dsi = _descriptor(dcd)
    if tag != 5 or dcd.rest():
        raise BoxError("DecoderConfigDescriptor: no DecSpecificInfo, or trailing bytes")
    tag, sl = _descriptor(es)
    if tag != 6 or es.rest():
        raise BoxError("ES_Descriptor: no SLConfigDescriptor, or trailing bytes")
    return {
        "version": version,
        "flags": flags,
        "es_id": es_id,
        "object_type": oti,
        "stream_type": stream_byte >> 2,
        "upstream": stream_byte >> 1 & 1,
        "reserved": stream_byte & 1,
        "buffer_size": buffer_size,
        "max_bitrate": max_bitrate,
        "avg_bitrate": avg_bitrate,
        "asc": dsi.rest(),
        "sl_predefined": sl.rest(),
    }


def _dops(c: Cursor) -> Fields:
    version, channels, pre_skip, rate, gain, family = c.take("BBHIhB")
    out = {
        "version": version,
        "channels": channels,
        "pre_skip": pre_skip,
        "input_sample_rate": rate,
        "output_gain": gain,
        "family": family,
    }
    if family:
        out["stream_count"], out["coupled_count"] = c.take("BB")
        out["mapping"] = c.raw(channels)
    return out


def _trex(c: Cursor) -> Fields:
    version, flags = c.full()
    track_id, sdi, duration, size, sample_flags = c.take("IIIII")
    return {
        "version": version,
        "flags": flags,
        "track_id": track_id,
        "sample_description_index": sdi,
        "default_duration": duration,
        "default_size": size,
        "default_flags": sample_flags,
    }


def _mfhd(c: Cursor) -> Fields:
    version, flags = c.full()
    return {"version": version, "flags": flags, "sequence_number": c.take("I")}


def _tfhd(c: Cursor) -> Fields:
    version, flags = c.full()
    out: Fields = {"version": version, "flags": flags, "track_id": c.take("I")}
    for bit, name, fmt in (
        (1, "base_data_offset", "Q"),
        (2, "sdi", "I"),
        (8, "duration", "I"),
        (0x10, "size", "I"),
        (0x20, "sample_flags", "I"),
    ):
        if flags & bit:
            out[name] = c.take(fmt)
    return out


def _tfdt(c: Cursor) -> Fields:
    version, flags = c.full()
    return {"version": version, "flags": flags, "base_decode_time": c.take("Q" if version else "I")}


def _trun(c: Cursor) -> Fields:
    version, flags = c.full()
    count = c.take("I")
    out: Fields = {"version": version, "flags": flags, "sample_count": count}
    if flags & 0x1:
        out["data_offset"] = c.take("i")
    if flags & 0x4:
        out["first_sample_flags"] = c.take("I")
    samples = []
    for _ in range(count):
        sample: Fields = {}
        for bit, name, fmt in (
            (0x100, "duration", "I"),
            (0x200, "size", "I"),
            (0x400, "flags", "I"),
            (0x800, "cto", "i" if version else "I"),
        ):
            if flags & bit:
                sample[name] = c.take(fmt)
        samples.append(sample)
    out["samples"] = samples
    return out


def _skip(c: Cursor) -> Fields:
    return {"length": len(c.rest())}


#: Where a box's children start inside its payload (containers, entry lists, sample entries).
CONTAINERS = (b"moov", b"trak", b"mdia", b"minf", b"dinf", b"stbl", b"mvex", b"moof", b"traf")
CHILDREN_AT: dict[bytes, int] = {
    **dict.fromkeys(CONTAINERS, 0),
    b"stsd": 8,
    b"dref": 8,
    b"avc1": 78,
    b"mp4a": 28,
    b"Opus": 28,
}

#: A field parser for every box type the writer emits.
FIELD_PARSERS: dict[bytes, Callable[[Cursor], Fields]] = {
    b"ftyp": _brands,
    b"styp": _brands,
    b"mvhd": _mvhd,
    b"tkhd": _tkhd,
    b"mdhd": _mdhd,
    b"hdlr": _hdlr,
    b"vmhd": _vmhd,
    b"smhd": _smhd,
    b"dref": _count_only,
    b"url ": _url,
    b"stsd": _count_only,
    b"stts": _count_only,
    b"stsc": _count_only,
    b"stsz": _stsz,
    b"stco": _count_only,
    b"avc1": _avc1,
    b"avcC": _avcc,
    b"pasp": _pasp,
    b"mp4a": _audio_entry,
    b"Opus": _audio_entry,
    b"esds": _esds,
    b"dOps": _dops,
    b"trex": _trex,
    b"mfhd": _mfhd,
    b"tfhd": _tfhd,
    b"tfdt": _tfdt,
    b"trun": _trun,
    b"mdat": _skip,
    **dict.fromkeys(CONTAINERS, lambda c: {}),
}
