"""Browser fixtures: the system Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.config import default_config_text, parse_config

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """Return the system Chromium, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def gateway_url() -> AsyncIterator[str]:
    """Run the gateway with its embedded default config (camera ``demo``) on loopback."""
    runner = web.AppRunner(create_app(parse_config(default_config_text(), {})), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.fixture
async def browser_page() -> AsyncIterator[object]:
    """Yield a Playwright page in headless system Chromium, or skip (fail in CI)."""
    path = chromium_path()
    try:
        from playwright.async_api import async_playwright  # noqa: PLC0415
    except ImportError:
        path = None
    if path is None:
        reason = "Chromium or Playwright not installed (apt-get install chromium)"
        if os.environ.get("GATEWAY_REQUIRE_BROWSER") == "1":
            pytest.fail(f"GATEWAY_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 700})
            yield page
        finally:
            await browser.close()
