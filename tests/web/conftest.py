"""Browser fixtures: the system Chromium driven by Playwright (never a downloaded browser),
and hls.js from the npm registry for the HLS tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.config import default_config_text, parse_config
from tests.web.hls_player import HlsPlayer, OpenPlayer, open_player

if TYPE_CHECKING:
    from playwright.async_api import Page

#: Features Playwright (1.65) disables with its own ``--disable-features``. Chromium honours
#: only the last such switch, so the one below repeats them (MediaRouter would look for
#: cast devices on the network, the others call Google) beside the one WebRTC needs.
PLAYWRIGHT_DISABLED_FEATURES = (
    "AvoidUnnecessaryBeforeUnloadCheckSync",
    "DestroyProfileOnBrowserClose",
    "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable",
    "LensOverlay",
    "MediaRouter",
    "PaintHolding",
    "ThirdPartyStoragePartitioning",
    "AvoidCorsURLLoaderRestartOnRedirect",
    "OptimizationHints",
    "NetworkTimeServiceQuerying",
    "AimEnabled",
    "PreconnectToSearch",
)
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # WebRTC with the tests' gateway, whose candidates are on 127.0.0.1 only. Chromium's
    # host candidates are this machine's interface addresses by number, not mDNS names
    # the gateway would resolve by multicast. (Chromium 156 on Linux gathers none on
    # loopback even when allowed: its checks reach the gateway's 127.0.0.1 candidate
    # from its own, within the machine.)
    "--allow-loopback-in-peer-connection",
    "--disable-features=" + ",".join((*PLAYWRIGHT_DISABLED_FEATURES, "WebRtcHideLocalIpsWithMdns")),
]
#: The npm project pinning hls.js (package.json, package-lock.json; node_modules ignored).
NPM_DIR = Path(__file__).parent
HLS_JS = NPM_DIR / "node_modules" / "hls.js" / "dist" / "hls.min.js"
#: Seconds ``npm ci`` may take on a fresh machine: under the tests' 120 s timeout, which
#: counts the fixture (npm gives up on an unreachable registry after about 70 s).
NPM_TIMEOUT = 100


def chromium_path() -> str | None:
    """Return the system Chromium, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def unavailable(reason: str) -> None:
    """Skip the test for a missing tool, or fail it where browsers are required (CI)."""
    if os.environ.get("GATEWAY_REQUIRE_BROWSER") == "1":
        pytest.fail(f"GATEWAY_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def require_browser() -> str:
    """Return the Chromium to drive, or skip (fail in CI) when it or Playwright is missing."""
    path = chromium_path()
    try:
        import playwright.async_api  # noqa: F401, PLC0415
    except ImportError:
        path = None
    if path is None:
        unavailable("Chromium or Playwright not installed (apt-get install chromium)")
    assert path is not None
    return path


def pinned_version() -> str:
    """Return the hls.js version package.json pins."""
    package = json.loads((NPM_DIR / "package.json").read_text())
    return str(package["dependencies"]["hls.js"])


def installed_version() -> str | None:
    """Return the hls.js version in node_modules, if its player script is there."""
    if not HLS_JS.is_file():
        return None
    package = json.loads((NPM_DIR / "node_modules" / "hls.js" / "package.json").read_text())
    return str(package["version"])


def config_text(webrtc: str = "") -> str:
    """Return the embedded default config (camera ``demo``), WebRTC on loopback only.

    ``webrtc`` adds lines to its ``[webrtc]`` table. aioice leaves 127.0.0.1 out of the
    candidates it gathers unless ``addresses`` names it; the tests never leave loopback.
    """
    text = default_config_text()
    table = "[webrtc]\n"
    assert table in text
    return text.replace(table, f'{table}addresses = ["127.0.0.1"]\n{webrtc}', 1)


@dataclass(frozen=True, slots=True)
class RunningGateway:
    """A gateway app serving on 127.0.0.1."""

    #: Its base URL, no trailing slash.
    url: str
    #: The running app.
    app: web.Application
    #: Every request answered, as (method, path, status), in order.
    requests: list[tuple[str, str, int]]


@asynccontextmanager
async def serve(text: str) -> AsyncIterator[RunningGateway]:
    """Run the gateway with config ``text`` on a free loopback port."""
    app = create_app(parse_config(text, {}))
    requests: list[tuple[str, str, int]] = []

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        requests.append((request.method, request.path, response.status))

    app.on_response_prepare.append(record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield RunningGateway(f"http://127.0.0.1:{runner.addresses[0][1]}", app, requests)
    finally:
        await runner.cleanup()


@pytest.fixture
async def gateway_url() -> AsyncIterator[str]:
    """Run the gateway with its embedded default config (camera ``demo``) on loopback."""
    async with serve(config_text()) as gateway:
        yield gateway.url


@pytest.fixture
async def browser_page() -> AsyncIterator[Page]:
    """Yield a Playwright page in headless system Chromium, or skip (fail in CI)."""
    path = require_browser()
    from playwright.async_api import async_playwright  # noqa: PLC0415

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 700})
            yield page
        finally:
            await browser.close()


@pytest.fixture(scope="session")
def hls_js() -> Path:
    """Return hls.min.js at the pinned version, running ``npm ci`` once if it is missing.

    ``.ci/run`` installs it beforehand; on a fresh machine the first HLS test does. Skips
    (fails in CI) without a browser, without npm, or when the install fails.
    """
    require_browser()  # no install for tests that cannot run
    if installed_version() == pinned_version():
        return HLS_JS
    npm = shutil.which("npm")
    if npm is None:
        unavailable("hls.js not installed and no npm to install it (apt-get install npm)")
    assert npm is not None
    command = [npm, "ci", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund"]
    try:
        done = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=NPM_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        unavailable(f"`npm ci` for hls.js took over {NPM_TIMEOUT} s")
    else:
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            unavailable(f"`npm ci` for hls.js failed: {' | '.join(lines[:3])}")
    found = installed_version()
    assert found == pinned_version(), f"npm ci installed hls.js {found}, not {pinned_version()}"
    return HLS_JS


@pytest.fixture
def hls_player(hls_js: Path, browser_page: Page) -> OpenPlayer:
    """Return a function that has hls.js (low-latency mode) play a playlist URL."""

    async def open_(url: str, config: Mapping[str, object] | None = None) -> HlsPlayer:
        return await open_player(browser_page, url, hls_js, config)

    return open_
