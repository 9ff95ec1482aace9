"""The page's <video> in a real browser: live fMP4 playing, glass-to-picture latency, unmute.

The latency is read off the simulator's block code in the pictures Chromium shows
(tests/web/frames.py says how).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.web.frames import read_shown

logger = logging.getLogger(__name__)

#: The demo camera's video on the page.
SELECTOR = "article.camera video"
VIDEO = f"document.querySelector('{SELECTOR}')"
#: Far above the ~1-2 s a progressive MP4 in Chromium shows; this is not a timing test.
MAX_LATENCY_NS = 5_000_000_000


async def test_video_plays_live_with_low_latency_and_unmutes(
    gateway_url: str, browser_page: Any, request: pytest.FixtureRequest
) -> None:
    page = browser_page
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The viewer chose fMP4 before (WebRTC is the default: test_web_webrtc.py).
    await page.add_init_script("localStorage.setItem('gateway.source', 'mp4')")
    await page.goto(gateway_url + "/")
    card = page.locator('article.camera[data-camera="demo"]')
    # Muted autoplay needs no gesture (the browser runs with its default autoplay policy).
    await page.wait_for_function(
        f"() => {VIDEO} && !{VIDEO}.paused && {VIDEO}.currentTime > 0", timeout=30_000
    )
    start = await page.evaluate(f"() => {VIDEO}.currentTime")
    await page.wait_for_function(f"() => {VIDEO}.currentTime >= {start} + 2", timeout=30_000)
    assert await card.locator("img").is_hidden()
    assert "H.264 video" in await card.locator(".mode").inner_text()
    # The overlay names the transport and estimates the delay from the buffered lead.
    overlay = card.locator(".overlay")
    assert await overlay.locator(".transport").inner_text() == "fMP4"
    await overlay.locator(".latency", has_text="(estimate)").wait_for(timeout=15_000)

    first = await read_shown(page, SELECTOR)
    second = await read_shown(page, SELECTOR, after=first.frame)
    assert second.frame > first.frame
    for shown in (first, second):
        assert 0 < shown.latency_ns < MAX_LATENCY_NS, shown
    latency_ms = [round(shown.latency_ns / 1e6, 1) for shown in (first, second)]
    # On the report (not record_property: it warns under junit_family xunit2) and in the log.
    request.node.user_properties.append(("glass_to_picture_ms", latency_ms))
    logger.info("glass-to-picture latency in Chromium: %s ms", latency_ms)

    # The stats show the encode and the AAC the video reads, and the video as a client.
    h264 = card.locator('li[data-rendition="h264"]', has_text="1 consumer")
    await h264.wait_for(timeout=15_000)
    await h264.locator(".badge", has_text="active").wait_for(timeout=15_000)
    figures = await h264.locator(".figures").inner_text()
    assert "fps" in figures
    assert "keyframes" in figures
    await card.locator('li[data-rendition="aac"]', has_text="1 consumer").wait_for(timeout=15_000)
    await card.locator(".clients", has_text="1 client (mp4)").wait_for(timeout=15_000)

    # The unmute button toggles the video's sound and says what a click will do.
    button = card.locator("button.mute")
    label = "document.querySelector('article.camera button.mute').textContent"
    assert await button.inner_text() == "Unmute"
    assert await page.evaluate(f"() => {VIDEO}.muted") is True
    await button.click()
    await page.wait_for_function(f"() => !{VIDEO}.muted && {label} === 'Mute'", timeout=5_000)
    assert await page.evaluate(f"() => {VIDEO}.paused") is False  # a click may play sound
    await button.click()
    await page.wait_for_function(f"() => {VIDEO}.muted && {label} === 'Unmute'", timeout=5_000)
    assert errors == []
