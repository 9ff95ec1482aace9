"""Chromium as a WHEP viewer: glass-to-browser latency and the time to the first picture.

The system Chromium, driven by Playwright (as tests/web does), opens
``whep_harness.html``, which this module serves on 127.0.0.1; the page plays a WHEP
endpoint and, for every picture the video presents, reads the capture time the
simulator painted into it. **Glass-to-browser** = when Chromium expects the picture on
screen minus that capture time (both unix wall clock, one machine). **First picture**
= when the first picture is expected on screen minus when the answer arrived. The page
checks its block-code reader against the simulator's own (``read_block_code``) on the
first picture it reads.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from aiohttp import web
from bench_hls import harness_path, r1, spread

from gateway.sim.pattern import read_block_code

if TYPE_CHECKING:
    from playwright.async_api import Page

HARNESS = Path(__file__).resolve().parent / "whep_harness.html"
#: On top of the test suite's flags: WebRTC on loopback, host candidates by address
#: (not mDNS names, which aioice would have to resolve), and playback without a gesture.
WEBRTC_FLAGS = [
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    # A page that may use a camera gets candidates on every interface, loopback included
    # (otherwise only the default route's): the harness asks once for the fake one.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
#: The harness's grab size (whep_harness.html W x H).
GRAB_WIDTH, GRAB_HEIGHT = 320, 240
#: Seconds to wait for the first picture of a session.
FIRST_PICTURE_TIMEOUT = 15.0


@asynccontextmanager
async def serve_harness() -> AsyncIterator[str]:
    """Serve the harness page on 127.0.0.1; yield its URL."""

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(HARNESS)

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def chromium() -> AsyncIterator[Page]:
    """Yield a page of headless system Chromium with the harness loaded."""
    harness_path()
    from playwright.async_api import async_playwright  # noqa: PLC0415

    from tests.web.conftest import CHROMIUM_FLAGS, chromium_path  # noqa: PLC0415

    path = chromium_path()
    if path is None:
        raise SystemExit("needs Chromium and Playwright: apt-get install chromium")
    async with serve_harness() as url, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS + WEBRTC_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 600})
            await page.goto(url)
            yield page
        finally:
            await browser.close()


def check_reader(check: dict[str, Any] | None) -> str:
    """Compare the page's reading of a picture with read_block_code's: "ok" or what differs."""
    if check is None:
        return "no readable picture"
    gray = np.frombuffer(base64.b64decode(check["gray"]), np.uint8)
    code = read_block_code(gray.reshape(GRAB_HEIGHT, GRAB_WIDTH))
    page = (check["frame"], check["captureUs"] * 1000)
    return "ok" if code == page else f"page read {page}, read_block_code {code}"


async def play(
    page: Page, url: str, *, seconds: float, settle: float, audio: bool = True
) -> dict[str, Any]:
    """Play WHEP endpoint url for settle + seconds; return the first picture's and latency figures.

    ``seconds == 0``: only the first picture (and the session's setup times). ``audio``:
    whether the offer asks for audio too. With audio, Chromium holds video back to play
    it in sync with the audio (one msid stream: RTCP sender reports tie the two clocks),
    so the video's latency is the later of the two paths'.
    """
    started = await page.evaluate(
        "([url, audio]) => window.harness.start(url, audio)", [url, audio]
    )
    await page.wait_for_function(
        "() => window.harness.firstPicture !== null", timeout=FIRST_PICTURE_TIMEOUT * 1e3
    )
    marks = await page.evaluate("() => window.harness.marks")
    first = await page.evaluate("() => window.harness.firstPicture")
    out: dict[str, Any] = {
        "audio": audio,
        "offer_candidates": started["offerCandidates"],
        "gather_ms": r1(marks["offer"] - marks["start"]),
        "answer_ms": r1(marks["answer"] - marks["offer"]),
        "connected_after_answer_ms": (
            r1(marks["connected"] - marks["answer"]) if "connected" in marks else None
        ),
        "first_picture_after_answer_ms": r1(first["expectedMs"] - marks["answer"]),
        "first_picture_after_offer_ms": r1(first["expectedMs"] - marks["offer"]),
    }
    if seconds > 0:
        await asyncio.sleep(settle)
        await page.evaluate("() => window.harness.take()")
        presented0 = await page.evaluate("() => window.harness.presented")
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        samples = await page.evaluate("() => window.harness.take()")
        presented = await page.evaluate("() => window.harness.presented") - presented0
        elapsed = time.monotonic() - t0
        out |= latency_figures(samples, presented, elapsed)
        out["inbound"] = inbound_figures(await page.evaluate("() => window.harness.inbound()"))
    out["unreadable"] = await page.evaluate("() => window.harness.unreadable")
    out["reader_check"] = check_reader(await page.evaluate("() => window.harness.check"))
    out["errors"] = await page.evaluate("() => window.harness.errors")
    await page.evaluate("() => window.harness.stop()")
    return out


def latency_figures(
    samples: list[dict[str, Any]], presented: int, seconds: float
) -> dict[str, Any]:
    """Return glass-to-browser latency and its split at the packets' arrival."""
    shown = [s["shownMs"] - s["captureUs"] / 1e3 for s in samples]
    received = [
        s["receiveMs"] - s["captureUs"] / 1e3 for s in samples if s["receiveMs"] is not None
    ]
    frames = [s["frame"] for s in samples]
    skipped = sum(b - a - 1 for a, b in itertools.pairwise(frames) if b > a)
    return {
        **spread(shown, "glass_to_browser_ms"),
        **spread(received, "glass_to_receive_ms"),
        "presented_fps": round(presented / seconds, 2),
        "frames_skipped": skipped,
        # Whether the latency moved over the window: the median of each second.
        "per_second_ms": [
            r1(statistics.median(shown[i : i + 25])) for i in range(0, len(shown), 25)
        ],
    }


def inbound_figures(stats: dict[str, Any]) -> dict[str, Any]:
    """Return the inbound video figures that say where the browser's time goes."""
    video = stats.get("video", {})
    codec = stats.get(f"codec:{video.get('codecId')}")
    emitted = video.get("jitterBufferEmittedCount") or 0
    decoded = video.get("framesDecoded") or 0
    return {
        "codec": codec,
        "frames_decoded": decoded,
        "frames_dropped": video.get("framesDropped"),
        "freeze_count": video.get("freezeCount"),
        "pli_count": video.get("pliCount"),
        "packets_lost": video.get("packetsLost"),
        # Averages over the session: what the jitter buffer held each frame, what it aimed
        # for, and from the first packet's arrival to the decoded frame.
        "jitter_buffer_ms": (r1(1e3 * video["jitterBufferDelay"] / emitted) if emitted else None),
        "jitter_buffer_target_ms": (
            r1(1e3 * video["jitterBufferTargetDelay"] / emitted)
            if emitted and "jitterBufferTargetDelay" in video
            else None
        ),
        "processing_ms": (
            r1(1e3 * video["totalProcessingDelay"] / decoded)
            if decoded and "totalProcessingDelay" in video
            else None
        ),
        "decode_ms": r1(1e3 * video["totalDecodeTime"] / decoded) if decoded else None,
        "audio_packets": stats.get("audio", {}).get("packetsReceived"),
        "pair": selected_pair(stats),
    }


def selected_pair(stats: dict[str, Any]) -> str | None:
    """Return the selected candidate pair as "local -> remote" addresses."""
    pair = stats.get(f"candidate-pair:{stats.get('pair')}")
    if pair is None:
        return None
    ends = []
    for kind, key in (
        ("local-candidate", "localCandidateId"),
        ("remote-candidate", "remoteCandidateId"),
    ):
        candidate = stats.get(f"{kind}:{pair[key]}", {})
        ends.append(f"{candidate.get('address')}:{candidate.get('port')}")
    return " -> ".join(ends)
