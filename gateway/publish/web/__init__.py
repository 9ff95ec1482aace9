"""The web page: static files served from this package (no vendored JavaScript)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"


async def index(request: web.Request) -> web.FileResponse:
    """Serve the camera page."""
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def add_routes(app: web.Application) -> None:
    """Add ``/`` and ``/static/`` to ``app``."""
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC, append_version=False)
