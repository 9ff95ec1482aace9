"""Axis-compatible publishing: MJPEG and JPEG (VAPIX §5.2), MPEG-2 (§5.3), audio (§5.5).

``add_routes`` adds the endpoints; ``add_camera`` makes the Axis side of one camera's
media: a ``CameraFanout`` (MJPEG) under ``FANOUTS``, an ``Mpeg2Source`` under
``MPEG2_SOURCES`` and an ``AudioSource`` under ``AUDIO_SOURCES``, for the sources the
camera has. The app puts every camera's configuration under ``CAMERA_CONFIGS`` and the
``AxisSettings`` under ``SETTINGS``.
"""

from __future__ import annotations

from aiohttp import web

from gateway.config import GatewayConfig
from gateway.hub import CameraMedia
from gateway.media import StreamKind

from . import audio, mpeg2
from .audio import AUDIO_SOURCES, AudioSource
from .fanout import AxisSettings, CameraFanout
from .handlers import FANOUTS, JPEG_PATHS, MJPEG_PATHS, SETTINGS
from .handlers import add_routes as add_mjpeg_routes
from .mpeg2 import MPEG2_SOURCES, Mpeg2Source
from .options import MjpegOptions, parse_mjpeg_options, part_header
from .streaming import CAMERA_CONFIGS, StreamOptions, parse_stream_options


def add_routes(app: web.Application) -> None:
    """Add every Axis endpoint to ``app`` and the keys its cameras are kept under."""
    app[FANOUTS] = {}
    app[MPEG2_SOURCES] = {}
    app[AUDIO_SOURCES] = {}
    add_mjpeg_routes(app)
    mpeg2.add_routes(app)
    audio.add_routes(app)


def add_camera(app: web.Application, media: CameraMedia, config: GatewayConfig) -> AxisCamera:
    """Make the Axis side of one camera."""
    return AxisCamera(app, media, config)


class AxisCamera:
    """The Axis side of one camera: whichever of its three readers the camera has."""

    def __init__(self, app: web.Application, media: CameraMedia, config: GatewayConfig) -> None:
        """Make the readers of ``media``'s sources and register them under the app's keys."""
        settings = app[SETTINGS]
        buffer_bytes = config.limits.client_buffer_bytes
        name = media.camera.name
        self.fanout = self.mpeg2 = self.audio = None
        if media.mjpeg is not None:
            self.fanout = app[FANOUTS][name] = CameraFanout(
                media, settings=settings, loop=media.loop
            )
        if media.mpeg2 is not None:
            self.mpeg2 = app[MPEG2_SOURCES][name] = Mpeg2Source(
                media, client_buffer_bytes=buffer_bytes, settings=settings
            )
        if media.audio is not None:
            self.audio = app[AUDIO_SOURCES][name] = AudioSource(
                media, client_buffer_bytes=buffer_bytes, settings=settings
            )

    def clients(self) -> list[dict[str, object]]:
        """Return the ``/api`` client entries of every Axis reader of the camera."""
        out: list[dict[str, object]] = []
        for reader in (self.fanout, self.mpeg2, self.audio):
            if reader is not None:
                out += reader.clients()
        return out

    def stats(self) -> dict[StreamKind, dict[str, object]]:
        """Return what the Axis side adds to ``/api`` ``streams``."""
        return {} if self.fanout is None else {StreamKind.MJPEG: self.fanout.stats()}

    def summary(self) -> dict[str, object]:
        """Return the Axis output's figures for ``/api`` ``outputs.axis``."""
        counts = {"mjpeg": self.fanout, "mpeg2": self.mpeg2, "audio": self.audio}
        return {
            f"{kind}_clients": len(reader.clients())
            for kind, reader in counts.items()
            if reader is not None
        }

    async def aclose(self) -> None:
        """Let snapshot transcodes finish (the media ends the streaming clients)."""
        if self.fanout is not None:
            await self.fanout.aclose()


__all__ = [
    "AUDIO_SOURCES",
    "CAMERA_CONFIGS",
    "FANOUTS",
    "JPEG_PATHS",
    "MJPEG_PATHS",
    "MPEG2_SOURCES",
    "SETTINGS",
    "AudioSource",
    "AxisCamera",
    "AxisSettings",
    "CameraFanout",
    "MjpegOptions",
    "Mpeg2Source",
    "StreamOptions",
    "add_camera",
    "add_routes",
    "parse_mjpeg_options",
    "parse_stream_options",
    "part_header",
]
