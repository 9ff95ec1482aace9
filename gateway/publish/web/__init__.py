"""The web page: static files served from this package (no vendored JavaScript)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"


async def index(request: web.Request) -> web.FileResponse:
    """Serve the camera page."""
    # A page opened with ``/?token=`` must not hand its URL to other sites as a Referer.
    headers = {"Cache-Control": "no-cache", "Referrer-Policy": "same-origin"}
    return web.FileResponse(STATIC / "index.html", headers=headers)


def add_routes(app: web.Application) -> None:
    """Add ``/`` and ``/static/`` to ``app``."""
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC, append_version=False)
