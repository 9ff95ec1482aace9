"""The web page in a real browser: cameras listed, state shown, MJPEG when the video fails."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest


async def test_page_is_served_with_its_assets(gateway_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(gateway_url + "/") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            html = await response.text()
        for asset in (
            "/static/whep.js",
            "/static/player.js",
            "/static/app.js",
            "/static/style.css",
        ):
            assert asset in html
            async with session.get(gateway_url + asset) as response:
                assert response.status == 200


async def test_page_falls_back_to_moving_mjpeg_when_the_video_fails(
    gateway_url: str, browser_page: Any, tmp_path: Path
) -> None:
    page = browser_page
    # The browser can fetch neither WHEP nor the fMP4 (that it tries next) nor the HLS
    # (where it would try that last): the card must show the MJPEG stream instead.
    await page.route("**/whep/**", lambda route: route.abort())
    await page.route("**/mp4/**", lambda route: route.abort())
    await page.route("**/hls/**", lambda route: route.abort())
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
    assert links == ["MP4", "HLS", "MJPEG", "snapshot", "MPEG-2", "audio", "state"]
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
    # Once the video can be fetched again, "Retry video" swaps the MJPEG for it (WHEP
    # fails still: fMP4).
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


#: The page's video of the demo camera, as a JavaScript expression.
VIDEO = "document.querySelector('article.camera video')"
#: What the page asks to know whether the browser's <video> plays HLS itself.
NATIVE_HLS = "() => document.createElement('video').canPlayType('application/vnd.apple.mpegurl')"


async def _wait_playing(page: Any, source: str) -> None:
    """Wait until the card's video plays from ``source`` (a URL path) and has advanced."""
    await page.wait_for_function(
        f"() => {VIDEO} && {VIDEO}.src.endsWith('{source}')"
        f" && !{VIDEO}.paused && {VIDEO}.currentTime > 1",
        timeout=30_000,
    )


async def _warm_hls(gateway_url: str, segments: int = 3) -> None:
    """Start the demo camera's HLS session and wait (blocking reloads) for its segments.

    Chromium's own HLS player plays whole segments only: a media playlist that lists
    nothing but the first parts (a session just started) fails to parse there.
    """
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gateway_url}/hls/demo/index.m3u8") as response:
            assert response.status == 200
            media = (await response.text()).splitlines()[-1]
        for msn in range(segments - 1):
            # _HLS_msn=n returns once segment n is complete (RFC 8216bis §6.2.5.2).
            url = f"{gateway_url}/hls/demo/{media}?_HLS_msn={msn}"
            async with session.get(url) as response:
                assert response.status == 200


async def test_page_links_hls_and_offers_it_where_the_browser_plays_it(
    gateway_url: str, browser_page: Any
) -> None:
    page = browser_page
    await page.goto(gateway_url + "/")
    card = page.locator('article.camera[data-camera="demo"]')
    link = card.locator(".links a", has_text="HLS")
    href = await link.get_attribute("href")
    assert href == "/hls/demo/index.m3u8"
    async with aiohttp.ClientSession() as session, session.get(gateway_url + href) as response:
        assert response.status == 200
        assert response.content_type == "application/vnd.apple.mpegurl"
        playlist = await response.text()
    assert playlist.startswith("#EXTM3U\n")
    assert "#EXT-X-STREAM-INF:" in playlist
    assert "/media.m3u8" in playlist
    source = card.locator("select.source")
    assert await source.is_visible()
    # WebRTC is the default; fMP4 and (where the browser plays it) HLS the viewer's choice.
    assert await source.input_value() == "webrtc"
    options = await source.locator("option").evaluate_all("(os) => os.map((o) => o.value)")
    native = await page.evaluate(NATIVE_HLS)
    if not native:  # older Chromium: no HLS without hls.js, which the page does not ship
        assert options == ["webrtc", "mp4"]
        return
    assert options == ["webrtc", "mp4", "hls"]
    await source.select_option("mp4")
    await _wait_playing(page, "/mp4/demo")
    await _warm_hls(gateway_url)
    await source.select_option("hls")
    await _wait_playing(page, href)
    await card.locator(".mode", has_text="LL-HLS video").wait_for(timeout=15_000)
    # The choice is remembered: a reload starts with HLS.
    await page.reload()
    await _wait_playing(page, href)
    assert await card.locator("select.source").input_value() == "hls"
    await card.locator("select.source").select_option("mp4")
    await _wait_playing(page, "/mp4/demo")


async def test_page_falls_back_to_hls_when_the_fmp4_fails(
    gateway_url: str, browser_page: Any
) -> None:
    page = browser_page
    # WHEP fails, then the fMP4 stream: the card tries HLS.
    await page.route("**/whep/**", lambda route: route.abort())
    await page.route("**/mp4/**", lambda route: route.abort())
    await page.goto("about:blank")
    if not await page.evaluate(NATIVE_HLS):
        pytest.skip("this Chromium plays no HLS itself (the fallback is MJPEG, tested above)")
    await _warm_hls(gateway_url)
    await page.goto(gateway_url + "/")
    card = page.locator('article.camera[data-camera="demo"]')
    await _wait_playing(page, "/hls/demo/index.m3u8")
    assert await card.locator("select.source").input_value() == "hls"
    assert await card.locator("img").is_hidden()
    assert "fMP4 failed" in (await card.locator(".mode").get_attribute("title") or "")
