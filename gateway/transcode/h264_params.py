"""Settings of the shared H.264 encode (``[cameras.h264]``) and what follows from them.

The output size is the camera's, scaled down into ``max_size`` with its aspect kept,
and the H.264 level is the lowest one (from 3.1 up) whose limits hold that size at the
expected frame rate (ITU-T H.264 Table A-1; see ``gateway.transcode.h264``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from gateway.errors import LocalProtocolError
from gateway.media import VIDEO_TIME_BASE

#: The software encoder every installation has; hardware encoders fall back to it.
LIBX264: Final = "libx264"
#: x264 constant rate factor used when no bitrate is set (x264's own default).
DEFAULT_CRF: Final = 23
#: Frame rate assumed for rate control and the level when neither the camera's
#: configured rate nor ``max_fps`` is known (the VAPIX default stream rate).
DEFAULT_FPS: Final = 25.0
#: Ticks of the 90 kHz video clock per second.
TICKS_PER_SECOND: Final = VIDEO_TIME_BASE.denominator
#: Pixels per macroblock side (H.264 §6.3).
MB_SIDE: Final = 16


@dataclass(frozen=True, slots=True)
class H264Settings:
    """One camera's ``[cameras.h264]`` table: how its shared H.264 encode is made."""

    #: ``libx264`` or a hardware encoder PyAV offers (``h264_nvenc``, ``h264_qsv``, ...);
    #: one that is missing or fails a test frame falls back to libx264.
    encoder: str = LIBX264
    #: x264 speed/quality preset (``ultrafast`` .. ``placebo``).
    preset: str = "veryfast"
    #: Target bitrate in kbit/s, capped by a one-second VBV; 0 = constant quality (crf).
    bitrate_kbps: int = 0
    #: Largest output (width, height); larger cameras are scaled down, never up.
    max_size: tuple[int, int] = (1280, 720)
    #: Source seconds between IDR pictures (the HLS segment length unless set).
    keyframe_seconds: float = 1.0
    #: Source frames closer than 1/max_fps to the schedule are dropped; None = all.
    max_fps: int | None = None

    def __post_init__(self) -> None:
        if not self.encoder or not self.preset:
            raise LocalProtocolError("encoder and preset must be non-empty")
        if self.bitrate_kbps < 0:
            raise LocalProtocolError(f"bitrate_kbps must be >= 0, got {self.bitrate_kbps}")
        if min(self.max_size) < 2:
            raise LocalProtocolError(f"max_size must be at least 2x2, got {self.max_size}")
        if not self.keyframe_seconds > 0:
            raise LocalProtocolError(f"keyframe_seconds must be > 0, got {self.keyframe_seconds}")
        if self.max_fps is not None and self.max_fps < 1:
            raise LocalProtocolError(f"max_fps must be >= 1, got {self.max_fps}")

    @property
    def keyframe_ticks(self) -> int:
        """Return the IDR interval in 90 kHz ticks."""
        return max(1, round(self.keyframe_seconds * TICKS_PER_SECOND))

    @property
    def frame_ticks(self) -> int | None:
        """Return the shortest frame interval ``max_fps`` allows, in 90 kHz ticks."""
        return None if self.max_fps is None else TICKS_PER_SECOND // self.max_fps


@dataclass(frozen=True, slots=True)
class Level:
    """Limits of one H.264 level (ITU-T H.264 Table A-1)."""

    #: ``level_idc`` (ten times the level number).
    idc: int
    #: MaxMBPS: macroblocks per second.
    max_mbps: int
    #: MaxFS: macroblocks per frame.
    max_fs: int
    #: MaxBR for Baseline/Main/Extended, kbit/s (VCL, factor 1000).
    max_br_kbps: int

    @property
    def name(self) -> str:
        """Return the level as written in x264 options (``3.1``, ``4``)."""
        major, minor = divmod(self.idc, 10)
        return f"{major}.{minor}" if minor else str(major)

    def holds(self, size: tuple[int, int], fps: float, bitrate_kbps: int) -> bool:
        """Return True when ``size`` at ``fps`` and ``bitrate_kbps`` stays inside the level."""
        mbs_w, mbs_h = (-(-side // MB_SIDE) for side in size)
        frame_mbs = mbs_w * mbs_h
        # Table A-1's frame-size limit also bounds each side: sqrt(8 * MaxFS) macroblocks.
        side_ok = max(mbs_w, mbs_h) ** 2 <= 8 * self.max_fs
        return (
            side_ok
            and frame_mbs <= self.max_fs
            and frame_mbs * fps <= self.max_mbps
            and bitrate_kbps <= self.max_br_kbps
        )


#: Levels the encoder picks from, lowest first. 3.1 is the floor: it is the level of
#: ``profile-level-id=42e01f`` that aiortc offers, so small streams match it exactly.
LEVELS: Final = (
    Level(31, 108_000, 3_600, 14_000),
    Level(32, 216_000, 5_120, 20_000),
    Level(40, 245_760, 8_192, 20_000),
    Level(41, 245_760, 8_192, 50_000),
    Level(42, 522_240, 8_704, 50_000),
    Level(50, 589_824, 22_080, 135_000),
    Level(51, 983_040, 36_864, 240_000),
    Level(52, 2_073_600, 36_864, 240_000),
)


def choose_level(size: tuple[int, int], fps: float, bitrate_kbps: int = 0) -> Level:
    """Return the lowest level holding ``size`` at ``fps`` (the highest if none does)."""
    for level in LEVELS:
        if level.holds(size, fps, bitrate_kbps):
            return level
    return LEVELS[-1]


def output_size(source: tuple[int, int], max_size: tuple[int, int]) -> tuple[int, int]:
    """Return ``source`` scaled down to fit ``max_size``, aspect kept, sides even.

    4:2:0 needs even sides; an odd one loses its last column or row rather than be
    scaled up (1920x1080 into 1280x720 gives 1280x720; 641x481 gives 640x480).
    """
    width, height = source
    if width < 1 or height < 1:
        raise LocalProtocolError(f"source size must be positive, got {width}x{height}")
    scale = min(Fraction(1), Fraction(max_size[0], width), Fraction(max_size[1], height))
    return _even(width * scale), _even(height * scale)


def _even(side: Fraction) -> int:
    """Return the largest even integer <= ``side``, at least 2."""
    return max(2, math.floor(side / 2) * 2)
