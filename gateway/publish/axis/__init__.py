"""Axis-compatible publishing: MJPEG and JPEG (VAPIX §5.2), MPEG-2 (§5.3), audio (§5.5).

``add_routes`` adds the endpoints. The app puts one ``CameraFanout`` per MJPEG camera
under ``FANOUTS``, one ``Mpeg2Source`` per MPEG-2 camera under ``MPEG2_SOURCES``, one
``AudioSource`` per audio camera under ``AUDIO_SOURCES``, every camera's configuration
under ``CAMERA_CONFIGS`` and the ``AxisSettings`` under ``SETTINGS``.
"""

from aiohttp import web

from . import audio, mpeg2
from .audio import AUDIO_SOURCES, AudioSource, LevelMeter
from .egress import ClientEgress
from .fanout import AxisSettings, CameraFanout
from .handlers import FANOUTS, JPEG_PATHS, MJPEG_PATHS, SETTINGS
from .handlers import add_routes as add_mjpeg_routes
from .mpeg2 import MPEG2_SOURCES, Mpeg2Source
from .options import MjpegOptions, parse_mjpeg_options, part_header
from .streaming import CAMERA_CONFIGS, CursorPump, StreamOptions, parse_stream_options
from .upstream import UpstreamRate


def add_routes(app: web.Application) -> None:
    """Add every Axis endpoint to ``app``."""
    add_mjpeg_routes(app)
    mpeg2.add_routes(app)
    audio.add_routes(app)


__all__ = [
    "AUDIO_SOURCES",
    "CAMERA_CONFIGS",
    "FANOUTS",
    "JPEG_PATHS",
    "MJPEG_PATHS",
    "MPEG2_SOURCES",
    "SETTINGS",
    "AudioSource",
    "AxisSettings",
    "CameraFanout",
    "ClientEgress",
    "CursorPump",
    "LevelMeter",
    "MjpegOptions",
    "Mpeg2Source",
    "StreamOptions",
    "UpstreamRate",
    "add_routes",
    "parse_mjpeg_options",
    "parse_stream_options",
    "part_header",
]
