"""Opening the H.264 encoder: libx264's options, hardware encoders, and the fallback.

libx264 is configured for a live, joinable, browser-playable stream (the reasons are in
``gateway.transcode.h264``'s docstring). A hardware encoder is used only when this
FFmpeg build has it *and* it opens and encodes a test picture; otherwise one warning
is logged and libx264 is used.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any, Final

import av

from gateway.media import VIDEO_TIME_BASE
from gateway.mux.h264 import NalType

from .h264_params import DEFAULT_CRF, LIBX264, H264Settings, Level, choose_level

#: Pixel format every encoder is fed (limited range, see ``gateway.transcode.h264``).
PIX_FMT: Final = "yuv420p"
#: Size of the test picture a hardware encoder must encode before it is used.
PROBE_SIZE: Final = (320, 240)
#: A GOP longer than any stream: IDR pictures are placed by the pipeline alone.
HARDWARE_GOP: Final = 1 << 30

#: NAL units left out of the MP4 samples. SPS and PPS live in ``avcC`` (ISO/IEC 14496-15
#: §5.3.3); an access unit delimiter adds nothing where samples delimit access units;
#: filler data is padding for a constant-rate channel. SEI: the only one x264 writes is
#: its user-data-unregistered version banner (payload type 5) in the first access unit,
#: which no decoder needs; dropping it leaves every sample made of slices alone, the
#: same before and after a join.
NOT_IN_SAMPLE: Final = frozenset(
    {NalType.SEI, NalType.SPS, NalType.PPS, NalType.AUD, NalType.FILLER}
)

#: VUI colour description (H.264 Table E-3..E-5 via x264's names): BT.601 matrix, the
#: one JFIF's YCbCr uses (ITU-T T.871 §7), limited range after the conversion, and
#: BT.601 primaries/transfer so all three describe one standard. The libx264 in PyAV's
#: wheels names the range flag ``fullrange`` (it logs "Error parsing option" for
#: ``range``).
VUI: Final = {
    "colorprim": "smpte170m",
    "transfer": "smpte170m",
    "colormatrix": "smpte170m",
    "fullrange": "off",
}

#: Low-latency options of the hardware encoders known here (untested without the
#: hardware: the test frame and the pipeline's IDR check catch one that ignores them).
#: Others get only the generic settings (no B-frames, an endless GOP).
HARDWARE_OPTIONS: Final[dict[str, dict[str, str]]] = {
    # NVENC: ultra-low-latency tuning, IDR (not just I) on a forced key frame.
    "h264_nvenc": {"tune": "ull", "zerolatency": "1", "forced-idr": "1", "profile": "baseline"},
    # Quick Sync: same intent, option names differ.
    "h264_qsv": {"forced_idr": "1", "profile": "baseline", "look_ahead": "0"},
}


def x264_options(settings: H264Settings, level: Level) -> dict[str, str]:
    """Return the libx264 private options for ``settings`` at ``level``."""
    params = {
        # The pipeline alone decides IDR pictures (by source time and on request).
        "keyint": "infinite",
        "scenecut": "0",
        # SPS and PPS in-band before every IDR, so a client may join at any of them.
        "repeat-headers": "1",
        "level": level.name,
        **VUI,
    }
    if settings.bitrate_kbps:
        rate = str(settings.bitrate_kbps)
        # A one-second VBV: close to constant bitrate without starving IDR pictures.
        params |= {"bitrate": rate, "vbv-maxrate": rate, "vbv-bufsize": rate}
    else:
        params["crf"] = str(DEFAULT_CRF)
    return {
        "preset": settings.preset,
        # No lookahead, no B-frames, no frame threads: each picture comes out at once.
        "tune": "zerolatency",
        # Constrained Baseline (x264 sets constraint_set0 and _set1): no B-frames, no
        # CABAC; what WebRTC's H.264 offers and every MSE implementation decodes.
        "profile": "baseline",
        # A picture sent as type I becomes an IDR, not a recovery-point I picture.
        "forced-idr": "1",
        "x264-params": ":".join(f"{key}={value}" for key, value in params.items()),
    }


def open_encoder(
    name: str, settings: H264Settings, size: tuple[int, int], fps: float, *, threads: int = 1
) -> Any:
    """Return an opened encoder ``name`` for ``size`` pictures expected at ``fps``.

    Raises av.FFmpegError (or ValueError for an unknown name) when it does not open.
    """
    ctx: Any = av.CodecContext.create(name, "w")
    ctx.width, ctx.height = size
    ctx.pix_fmt = PIX_FMT
    # Pictures carry the camera's 90 kHz pts; packets come back with the same values.
    ctx.time_base = VIDEO_TIME_BASE
    # Only x264's rate control (bitrate mode) and the level's rate check use this; the
    # stream itself is timed by the pts.
    ctx.framerate = Fraction(fps).limit_denominator(1001)
    ctx.thread_count = threads
    ctx.max_b_frames = 0
    if name == LIBX264:
        ctx.options = x264_options(settings, choose_level(size, fps, settings.bitrate_kbps))
    else:
        ctx.gop_size = HARDWARE_GOP
        if settings.bitrate_kbps:
            ctx.bit_rate = settings.bitrate_kbps * 1000
        ctx.options = dict(HARDWARE_OPTIONS.get(name, {}))
    ctx.open()
    return ctx


def probe_encoder(name: str, settings: H264Settings) -> str | None:
    """Return why encoder ``name`` cannot be used, or None when it encodes a test picture."""
    try:
        av.Codec(name, "w")
    except ValueError:
        return "not in this FFmpeg build"
    try:
        ctx = open_encoder(name, settings, PROBE_SIZE, float(settings.max_fps or 25))
        picture = av.VideoFrame(*PROBE_SIZE, PIX_FMT)
        for plane in picture.planes:
            plane.update(bytes(plane.buffer_size))
        picture.pts = 0
        packets = ctx.encode(picture) + ctx.encode(None)
    except (av.FFmpegError, ValueError) as exc:
        return f"does not encode: {exc}"
    return None if packets else "produced no packet for a test picture"


def select_encoder(
    settings: H264Settings, log: logging.Logger | logging.LoggerAdapter[logging.Logger]
) -> str:
    """Return ``settings.encoder`` when usable, else log one warning and return libx264."""
    if settings.encoder == LIBX264:
        return LIBX264
    reason = probe_encoder(settings.encoder, settings)
    if reason is None:
        return settings.encoder
    log.warning("H.264 encoder %s unusable (%s); using %s", settings.encoder, reason, LIBX264)
    return LIBX264
