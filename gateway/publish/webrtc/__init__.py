"""WebRTC egress: WHEP signaling and tracks fed from the shared encode."""

from __future__ import annotations

from .server import SESSIONS, Sessions, WebRtcCamera, add_camera, add_routes

__all__ = ["SESSIONS", "Sessions", "WebRtcCamera", "add_camera", "add_routes"]
