"""What every publisher finds on the app: each camera's media, by camera name."""

from __future__ import annotations

from aiohttp import web

from gateway.config import find_camera
from gateway.hub import CameraMedia

#: Every camera's media (sources, renditions) by camera name; the app fills it.
MEDIA = web.AppKey("media", dict[str, CameraMedia])


def find_media(app: web.Application, key: str) -> CameraMedia | None:
    """Return the media of the camera named or numbered ``key`` (DESIGN §5), or None."""
    media = app[MEDIA]
    camera = find_camera((m.camera for m in media.values()), key)
    return None if camera is None else media[camera.name]
