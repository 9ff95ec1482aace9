"""Axis-compatible publishing (VAPIX §5.2): MJPEG streams and JPEG snapshots.

``add_routes`` adds the endpoints; the app puts one ``CameraFanout`` per camera under
``FANOUTS`` and the ``AxisSettings`` under ``SETTINGS``.
"""

from .egress import ClientEgress
from .fanout import AxisSettings, CameraFanout
from .handlers import FANOUTS, JPEG_PATHS, MJPEG_PATHS, SETTINGS, add_routes
from .options import MjpegOptions, parse_mjpeg_options, part_header
from .upstream import UpstreamRate

__all__ = [
    "FANOUTS",
    "JPEG_PATHS",
    "MJPEG_PATHS",
    "SETTINGS",
    "AxisSettings",
    "CameraFanout",
    "ClientEgress",
    "MjpegOptions",
    "UpstreamRate",
    "add_routes",
    "parse_mjpeg_options",
    "part_header",
]
