"""Viewing tokens in Chromium: hls.js plays ``index.m3u8?token=``, and the page opened with
``/?token=`` plays over WebRTC (the WHEP requests carry it as a bearer token) and as
``<video src="/mp4/demo?token=...">``, listing only the token's camera.

The gateway has ``[[users]]``: without the token every request would be a 401.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.access import TokenSigner
from tests.web.conftest import config_text, serve
from tests.web.hls_player import OpenPlayer

KEY = "web-access-test-key-0123456789"
ACCESS = f'[tokens]\nkey = "{KEY}"\n[[users]]\nname = "admin"\npassword = "pw"\nrole = "admin"\n'
#: A second camera the token does not name (small and slow: it only has to exist).
OTHER = (
    '[[cameras]]\nname = "other"\nsource = "sim"\nmjpeg = true\nmpeg2 = false\n'
    'audio = false\nfps = 2\nresolution = "160x120"\n'
)
CARD = 'article.camera[data-camera="demo"]'
PLAYER = f"document.querySelector('{CARD}')?.player"


def token_for(*cameras: str) -> str:
    """Return a token for ``cameras``, valid for ten minutes."""
    return TokenSigner(KEY.encode()).issue(cameras, now=time.time(), ttl=600)


async def test_hls_js_plays_a_playlist_url_with_a_token(hls_player: OpenPlayer) -> None:
    async with serve(config_text() + ACCESS) as gateway:
        token = token_for("demo")
        player = await hls_player(f"{gateway.url}/hls/demo/index.m3u8?token={token}")
        await player.wait_playing(2.0)
        stats = await player.stats()
        errors = await player.errors()
        await player.close()
        assert errors == []
        assert stats.total_frames > 0
        hls = [(path, status) for _, path, status in gateway.requests if path.startswith("/hls/")]
        # The playlists, the init segment and parts: every URI the playlists listed
        # carried the token (a 401 otherwise).
        assert any(path.endswith("/media.m3u8") for path, _ in hls)
        assert any(path.endswith(".mp4") for path, _ in hls)
        assert any("/part" in path for path, _ in hls)
        assert {status for _, status in hls} == {200}, hls


async def test_the_page_opened_with_a_token_plays_only_its_camera(browser_page: Any) -> None:
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    async with serve(config_text() + ACCESS + OTHER) as gateway:
        token = token_for("demo")
        await page.goto(f"{gateway.url}/?token={token}")
        # WebRTC first: the offer POSTed with the token as a bearer token.
        await page.wait_for_function(
            f"() => {PLAYER}?.transport === 'webrtc' && {PLAYER}.state === 'playing'",
            timeout=30_000,
        )
        assert await page.locator("article.camera").count() == 1
        # A viewer's /api: no clients or renditions shown.
        card = page.locator(CARD)
        assert await card.locator(".clients").is_hidden()
        assert "1 camera, 1 live" in await page.locator("#summary").inner_text()
        # Then fMP4: a bare <video src> whose URL carries the token.
        await card.locator("select.source").select_option("mp4")
        video = f"document.querySelector('{CARD} video')"
        await page.wait_for_function(
            f"() => {video}.src.includes('/mp4/demo?token=') && !{video}.paused"
            f" && {video}.currentTime > 1",
            timeout=30_000,
        )
        links = await card.locator(".links a").evaluate_all("(as) => as.map((a) => a.href)")
        assert links
        assert all(f"token={token}" in link for link in links)
        await page.close()
        requests = gateway.requests
        assert ("POST", "/whep/demo", 201) in requests
        assert any(m == "DELETE" and s == 200 for m, _, s in requests), requests
        assert ("GET", "/mp4/demo", 200) in requests
        assert ("GET", "/api/cameras", 200) in requests
        assert [r for r in requests if r[2] in (401, 403)] == []
        assert not any("/other" in path or "camera=other" in path for _, path, _ in requests)
    assert errors == []
