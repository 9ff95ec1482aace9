"""The web page in a real browser: cameras listed, state shown, MJPEG when the video fails."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aiohttp


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


async def test_page_falls_back_to_moving_mjpeg_when_the_video_fails(
    gateway_url: str, browser_page: Any, tmp_path: Path
) -> None:
    page = browser_page
    # The browser cannot fetch the fMP4: the card must show the MJPEG stream instead.
    await page.route("**/mp4/**", lambda route: route.abort())
    await page.goto(gateway_url + "/")
    card = page.locator('article.camera[data-camera="demo"]')
    await card.locator(".state", has_text="live").wait_for(timeout=15_000)
    await card.locator(".mode", has_text="MJPEG — video failed").wait_for(timeout=15_000)
    assert await card.locator("video").is_hidden()
    assert await card.locator(".mute").is_hidden()
    # The MJPEG <img> decodes real frames at the camera's size.
    await page.wait_for_function(
        "() => { const i = document.querySelector('article.camera img');"
        " return i && !i.hidden && i.complete && i.naturalWidth === 640"
        " && i.naturalHeight === 480; }",
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
    # The page's own <img> is the camera's only client (the video never reached the gateway).
    await card.locator(".clients", has_text="1 client (mjpeg)").wait_for(timeout=15_000)
    links = await card.locator(".links a").all_inner_texts()
    assert links == ["MP4", "MJPEG", "snapshot", "MPEG-2", "audio", "state"]
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
    shot = Path(os.environ.get("GATEWAY_SCREENSHOT_DIR", tmp_path)) / "web-page-mjpeg.png"
    await page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    # Once the video can be fetched again, "Retry video" swaps the MJPEG for it.
    await page.unroute("**/mp4/**")
    await card.locator(".retry").click()
    await page.wait_for_function(
        "() => { const v = document.querySelector('article.camera video');"
        " return !v.hidden && !v.paused && v.currentTime > 0; }",
        timeout=30_000,
    )
    assert await card.locator("img").is_hidden()
    assert await card.locator(".retry").is_hidden()
    await card.locator(".clients", has_text="1 client (mp4)").wait_for(timeout=15_000)
