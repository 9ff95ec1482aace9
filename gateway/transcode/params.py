"""Axis image parameters (VAPIX §5.2.2 / §5.2.6): validation and the variant key."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from gateway.errors import RemoteProtocolError

#: Rotations VAPIX allows, clockwise degrees (§5.2.2 ``rotation``).
ROTATIONS = (0, 90, 180, 270)
#: Largest side accepted when the source size is not known yet (JPEG allows 65535).
MAX_SIDE = 8192
#: ``colorlevel`` that leaves colour untouched (VAPIX: 100 = full colour).
FULL_COLOR = 100
#: Overlay switches VAPIX defines; accepted and validated but not drawn by the gateway.
OVERLAY_KEYS = ("clock", "date", "text")

_T = TypeVar("_T")
_INT = re.compile(r"[0-9]{1,6}")
_RESOLUTION = re.compile(r"([0-9]{1,6})[xX]([0-9]{1,6})")


class ParamError(RemoteProtocolError, ValueError):
    """A client asked for an image parameter value the gateway cannot honour."""


@dataclass(frozen=True, slots=True)
class ImageParams:
    """What a client asked to change in the image; equal values share one variant."""

    #: Output (width, height) *after* rotation; None keeps the source size.
    resolution: tuple[int, int] | None = None
    #: VAPIX compression 0 (best) .. 100 (smallest); None re-encodes at the default.
    compression: int | None = None
    #: 0 = grayscale .. 100 = full colour; None (or 100) keeps the colour.
    colorlevel: int | None = None
    #: Clockwise rotation in degrees: 0, 90, 180 or 270.
    rotation: int = 0

    def __post_init__(self) -> None:
        # The key is built by parse_image_params; this guards direct construction.
        if self.rotation not in ROTATIONS:
            raise ParamError(_rotation_reason(str(self.rotation)))
        if self.resolution is not None and min(self.resolution) < 1:
            raise ParamError(f"resolution must be at least 1x1, got {self.resolution}")
        for name in ("compression", "colorlevel"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 100:
                raise ParamError(f"{name} must be an integer from 0 to 100, got {value}")

    @property
    def is_passthrough(self) -> bool:
        """Return True when nothing changes the image (serve the camera's bytes)."""
        return (
            self.resolution is None
            and self.compression is None
            and self.colorlevel in (None, FULL_COLOR)
            and self.rotation == 0
        )

    def output_size(self, source_size: tuple[int, int]) -> tuple[int, int]:
        """Return the (width, height) produced from a source of ``source_size``."""
        if self.resolution is not None:
            return self.resolution
        width, height = source_size
        return (height, width) if self.rotation in (90, 270) else (width, height)

    def describe(self) -> str:
        """Return a short stable label, e.g. ``320x240,c30,cl0,r90`` (logs, API, threads)."""
        parts = []
        if self.resolution is not None:
            parts.append(f"{self.resolution[0]}x{self.resolution[1]}")
        if self.compression is not None:
            parts.append(f"c{self.compression}")
        if self.colorlevel is not None:
            parts.append(f"cl{self.colorlevel}")
        if self.rotation:
            parts.append(f"r{self.rotation}")
        return ",".join(parts) or "passthrough"


def parse_image_params(
    query: Mapping[str, str], source_size: tuple[int, int] | None = None
) -> ImageParams:
    """Validate the image parameters of an Axis request and return the variant key.

    ``query`` is the request's query (other keys are ignored); ``source_size`` is the
    camera's (width, height) when known, so larger resolutions are refused. A
    resolution equal to the (rotated) source size and ``colorlevel=100`` are folded
    away, so such requests share the pass-through. ``clock``, ``date`` and ``text``
    must be 0 or 1 and are otherwise ignored: the gateway draws no overlays.
    Raises ParamError with a one-line reason.
    """
    for key in OVERLAY_KEYS:
        if key in query and query[key] not in ("0", "1"):
            raise ParamError(f"{key} must be 0 or 1, got {_show(query[key])}")
    rotation = _parse_field(query, "rotation", _parse_rotation)
    compression = _parse_field(query, "compression", _parse_percent("compression"))
    colorlevel = _parse_field(query, "colorlevel", _parse_percent("colorlevel"))
    resolution = _parse_field(query, "resolution", _parse_resolution)
    rotation = 0 if rotation is None else rotation
    if resolution is not None and source_size is not None:
        width, height = source_size
        limit = (height, width) if rotation in (90, 270) else (width, height)
        if resolution[0] > limit[0] or resolution[1] > limit[1]:
            rotated = " (rotated)" if limit != source_size else ""
            raise ParamError(
                f"resolution {resolution[0]}x{resolution[1]} is larger than the "
                f"source{rotated} {limit[0]}x{limit[1]}"
            )
        if resolution == limit:
            resolution = None
    if colorlevel == FULL_COLOR:
        colorlevel = None
    return ImageParams(resolution, compression, colorlevel, rotation)


def _parse_field(query: Mapping[str, str], key: str, parse: Callable[[str], _T]) -> _T | None:
    """Return the parsed value of ``key``, or None when the request does not set it."""
    return parse(query[key]) if key in query else None


def _parse_rotation(text: str) -> int:
    """Return a VAPIX rotation."""
    if _INT.fullmatch(text) and int(text) in ROTATIONS:
        return int(text)
    raise ParamError(_rotation_reason(text))


def _rotation_reason(text: str) -> str:
    """Return the one-line reason for a bad rotation."""
    return f"rotation must be 0, 90, 180 or 270, got {_show(text)}"


def _parse_percent(name: str) -> Callable[[str], int]:
    """Return a parser for a VAPIX 0..100 value called ``name``."""

    def parse(text: str) -> int:
        if _INT.fullmatch(text) and int(text) <= 100:
            return int(text)
        raise ParamError(f"{name} must be an integer from 0 to 100, got {_show(text)}")

    return parse


def _parse_resolution(text: str) -> tuple[int, int]:
    """Return (width, height) from ``<width>x<height>``."""
    match = _RESOLUTION.fullmatch(text)
    if match is None:
        raise ParamError(f"resolution must be <width>x<height>, got {_show(text)}")
    width, height = int(match[1]), int(match[2])
    if width < 1 or height < 1:
        raise ParamError(f"resolution must be at least 1x1, got {_show(text)}")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ParamError(f"resolution sides must be at most {MAX_SIDE}, got {_show(text)}")
    return width, height


def _show(text: str) -> str:
    """Return a client value fit for a one-line message (bounded, printable)."""
    if len(text) > 32:
        return repr(text[:32] + "...")
    plain = text.isascii() and text.isprintable() and text and " " not in text
    return text if plain and "'" not in text else repr(text)
