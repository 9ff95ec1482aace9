"""The web page in a real browser: cameras listed, state shown, live MJPEG playing."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.config import default_config_text, parse_config


@pytest.fixture
async def gateway_url() -> AsyncIterator[str]:
    runner = web.AppRunner(create_app(parse_config(default_config_text(), {})), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_page_is_served_with_its_assets(gateway_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(gateway_url + "/") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            html = await response.text()
        for asset in ("/static/app.js", "/static/style.css"):
            assert asset in html
            async with session.get(gateway_url + asset) as response:
                assert response.status == 200


async def test_page_shows_demo_live_with_moving_mjpeg(
    gateway_url: str, browser_page: Any, tmp_path: Path
) -> None:
    page = browser_page
    await page.goto(gateway_url + "/")
    card = page.locator('article.camera[data-camera="demo"]')
    await card.locator(".state", has_text="live").wait_for(timeout=15_000)
    # The MJPEG <img> decodes real frames at the camera's size.
    await page.wait_for_function(
        "() => { const i = document.querySelector('article.camera img');"
        " return i && i.complete && i.naturalWidth === 640 && i.naturalHeight === 480; }",
        timeout=15_000,
    )
    fps_text = await card.locator('dd[data-stream="mjpeg"]').inner_text()
    assert "fps" in fps_text
    assert float(fps_text.split()[0]) > 20
    assert "1 camera, 1 live" in await page.locator("#summary").inner_text()
    # MPEG-2 shows its prebuffer and audio its decoded level once they have filled.
    mpeg2 = card.locator('dd[data-stream="mpeg2"]', has_text="prebuffer")
    await mpeg2.wait_for(timeout=15_000)
    audio = card.locator('dd[data-stream="audio"]', has_text="dBFS")
    await audio.wait_for(timeout=15_000)
    level = float((await audio.inner_text()).split("level ")[1].split()[0])
    assert -20 < level < -5  # the simulator's tone at 0.4 of full scale: about -11 dBFS
    # The page's own <img> is the camera's MJPEG client, listed like any other.
    await card.locator(".clients", has_text="1 client").wait_for(timeout=15_000)
    links = await card.locator(".links a").all_inner_texts()
    assert links == ["snapshot", "MPEG-2", "audio", "state"]
    # The picture moves: two canvas grabs of the <img> a moment apart differ.
    grab = (
        "() => { const i = document.querySelector('article.camera img');"
        " const c = document.createElement('canvas'); c.width = 64; c.height = 48;"
        " const x = c.getContext('2d'); x.drawImage(i, 0, 0, 64, 48);"
        " return Array.from(x.getImageData(0, 0, 64, 48).data).join(','); }"
    )
    first = await page.evaluate(grab)
    await page.wait_for_timeout(500)
    assert await page.evaluate(grab) != first
    shot = Path(os.environ.get("GATEWAY_SCREENSHOT_DIR", tmp_path)) / "web-page.png"
    await page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
