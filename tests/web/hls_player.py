"""hls.js in Chromium as the HLS tests' player: play a live playlist, measure it, report.

hls.js comes from the npm registry (tests/web/package.json, installed by ``.ci/run`` or
the ``hls_js`` fixture); the gateway never ships it. Playwright routes answer the player
page and the script on the stream's own origin, so hls.js fetches the playlist
same-origin (no CORS needed), and the routes are dropped before playback starts: no
media request takes a detour through the test process.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from yarl import URL

from tests.web.frames import Shown, read_shown

if TYPE_CHECKING:
    from playwright.async_api import ConsoleMessage, Error, Page, Route

#: Where the routes answer the player page and hls.js, on the stream's origin.
PAGE_PATH = "/hls-harness/player.html"
SCRIPT_PATH = "/hls-harness/hls.min.js"
#: The page's video element.
VIDEO = "#video"
#: What every player starts from; ``open_player``'s config overrides single keys.
DEFAULT_CONFIG: Mapping[str, object] = {"lowLatencyMode": True, "debug": False}
#: Errors kept per source; later ones are only counted (``PlayerStats.errors_dropped``).
MAX_ERRORS = 100

PAGE = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>hls.js harness</title>
<link rel="icon" href="data:,">
<script src="{SCRIPT_PATH}"></script></head>
<body style="margin:0;background:#000">
<video id="video" muted autoplay playsinline width="640" height="480"></video>
</body></html>"""
#: Starts hls.js on the page's video and keeps what the Python side reads in
#: ``window.harness``; returns hls.js's version.
START = """([url, config, maxErrors]) => {
  const video = document.getElementById('video');
  const state = { errors: [], errorsDropped: 0, fatal: null, fragments: 0, parts: 0,
                  playlistUpdates: 0, details: null };
  const record = (error) => {
    if (error.fatal && state.fatal === null) state.fatal = error;
    if (state.errors.length < maxErrors) state.errors.push(error); else state.errorsDropped++;
  };
  const hls = new Hls(config);
  hls.on(Hls.Events.ERROR, (event, data) => record({
    type: String(data.type), details: String(data.details), fatal: Boolean(data.fatal),
    message: String((data.error && data.error.message) || data.reason || ''),
    url: String((data.part && data.part.url) || (data.frag && data.frag.url) || data.url
                || (data.context && data.context.url) || ''),
    status: (data.response && typeof data.response.code === 'number') ? data.response.code : null,
  }));
  hls.on(Hls.Events.FRAG_LOADED, (event, data) => {
    if (data.part) state.parts++; else state.fragments++;
  });
  hls.on(Hls.Events.LEVEL_UPDATED, (event, data) => {
    state.playlistUpdates++;
    state.details = data.details;
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch((e) => record({
    type: 'play', details: String(e.name), fatal: true, message: String(e.message), url: '',
    status: null,
  })));
  hls.loadSource(url);
  hls.attachMedia(video);
  window.harness = { hls, video, state };
  return Hls.version;
}"""
STATS = """() => {
  const { hls, video, state } = window.harness;
  const ranges = video.buffered;
  const end = ranges.length ? ranges.end(ranges.length - 1) : video.currentTime;
  const quality = video.getVideoPlaybackQuality();
  const details = state.details;
  return {
    latency: hls.latency, targetLatency: hls.targetLatency, drift: hls.drift,
    buffer: Math.max(end - video.currentTime, 0), currentTime: video.currentTime,
    playbackRate: video.playbackRate, paused: video.paused,
    droppedFrames: quality.droppedVideoFrames, totalFrames: quality.totalVideoFrames,
    fragments: state.fragments, parts: state.parts, playlistUpdates: state.playlistUpdates,
    live: details ? details.live : null, canBlockReload: details ? details.canBlockReload : false,
    partTarget: details ? details.partTarget : 0,
    targetDuration: details ? details.targetduration : 0,
    errorsDropped: state.errorsDropped,
  };
}"""


class ErrorSource(enum.StrEnum):
    """Where the page reported an error."""

    #: An hls.js ``ERROR`` event (fatal or not), or the video refusing to play.
    HLS = "hls"
    #: A console message of type error (failed loads among them).
    CONSOLE = "console"
    #: An uncaught exception in the page.
    PAGE = "page"


@dataclass(frozen=True, slots=True)
class PlayerError:
    """An error the player page reported."""

    #: Who reported it.
    source: ErrorSource
    #: hls.js's error type (``networkError``, ``mediaError``, ...); the console or page's otherwise.
    type: str
    #: hls.js's error details (``levelLoadError``, ``bufferStalledError``, ...).
    details: str
    #: Whether hls.js gave up on the stream.
    fatal: bool
    #: The error's message or reason.
    message: str
    #: The URL involved (part, fragment or playlist), if any.
    url: str = ""
    #: The HTTP status of a failed load, if any.
    status: int | None = None


@dataclass(frozen=True, slots=True)
class PlayerStats:
    """What hls.js and the video say about the playback."""

    #: hls.js's estimate of the distance to the live edge, s (``hls.latency``).
    latency_s: float
    #: The latency hls.js aims for, s (``hls.targetLatency``; None before a live playlist).
    target_latency_s: float | None
    #: How fast the live edge advances against the wall clock (``hls.drift``).
    drift: float | None
    #: Video buffered ahead of the playhead, s.
    buffer_s: float
    #: The video's current time, s.
    current_time_s: float
    #: The video's playback rate (hls.js speeds up to catch up in low-latency mode).
    playback_rate: float
    #: Whether the video is paused.
    paused: bool
    #: Pictures the video dropped and presented in all (``getVideoPlaybackQuality``).
    dropped_frames: int
    total_frames: int
    #: Whole segments and partial segments loaded.
    fragments_loaded: int
    parts_loaded: int
    #: Media playlist loads that hls.js parsed.
    playlist_updates: int
    #: From the newest media playlist: live (no ENDLIST), blocking reload offered,
    #: PART-TARGET and TARGETDURATION (s; 0 when absent).
    live: bool | None
    can_block_reload: bool
    part_target_s: float
    target_duration_s: float
    #: hls.js errors past the ``MAX_ERRORS`` kept.
    errors_dropped: int


class HlsPlayer:
    """hls.js playing one playlist in a page: its pictures, errors and figures."""

    def __init__(self, page: Page) -> None:
        self.page = page
        #: hls.js's version, once started.
        self.version = ""
        self._errors: list[PlayerError] = []
        self._errors_dropped = 0
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)

    async def start(
        self, url: str, script: Path, config: Mapping[str, object] | None = None
    ) -> None:
        """Open the player page on url's origin and have hls.js (from script) play url."""
        origin = URL(url).origin()
        page_url, script_url = str(origin.with_path(PAGE_PATH)), str(origin.with_path(SCRIPT_PATH))

        async def serve_page(route: Route) -> None:
            await route.fulfill(status=200, content_type="text/html", body=PAGE)

        async def serve_script(route: Route) -> None:
            await route.fulfill(status=200, content_type="text/javascript", path=script)

        await self.page.route(page_url, serve_page)
        await self.page.route(script_url, serve_script)
        try:
            await self.page.goto(page_url)  # waits for the load event, after the script ran
        finally:
            await self.page.unroute(page_url, serve_page)
            await self.page.unroute(script_url, serve_script)
        assert await self.page.evaluate("() => Hls.isSupported()"), "hls.js: no MSE here"
        merged = {**DEFAULT_CONFIG, **(config or {})}
        self.version = await self.page.evaluate(START, [url, merged, MAX_ERRORS])

    async def wait_playing(self, min_seconds: float = 1.0, *, within: float = 30.0) -> None:
        """Wait until the video plays and has advanced min_seconds; fail on a fatal error."""
        deadline = asyncio.get_running_loop().time() + within
        await self._wait("v => !v.paused && v.readyState >= 3 && v.currentTime > 0", deadline)
        start = await self.page.evaluate("() => harness.video.currentTime")
        await self._wait(f"v => v.currentTime >= {start + min_seconds}", deadline)

    async def latency_samples(self, n: int) -> list[Shown]:
        """Return n pictures the video shows next, frame numbers strictly increasing."""
        samples: list[Shown] = []
        after = -1
        for _ in range(n):
            shown = await read_shown(self.page, VIDEO, after=after)
            samples.append(shown)
            after = shown.frame
        return samples

    async def errors(self) -> list[PlayerError]:
        """Return hls.js's errors, then the console's and the page's, each in order."""
        reported = await self.page.evaluate("() => harness.state.errors")
        return [PlayerError(ErrorSource.HLS, **error) for error in reported] + self._errors

    async def stats(self) -> PlayerStats:
        """Return what hls.js and the video say now."""
        raw = await self.page.evaluate(STATS)
        return PlayerStats(
            latency_s=raw["latency"],
            target_latency_s=raw["targetLatency"],
            drift=raw["drift"],
            buffer_s=raw["buffer"],
            current_time_s=raw["currentTime"],
            playback_rate=raw["playbackRate"],
            paused=raw["paused"],
            dropped_frames=raw["droppedFrames"],
            total_frames=raw["totalFrames"],
            fragments_loaded=raw["fragments"],
            parts_loaded=raw["parts"],
            playlist_updates=raw["playlistUpdates"],
            live=raw["live"],
            can_block_reload=bool(raw["canBlockReload"]),
            part_target_s=raw["partTarget"] or 0.0,
            target_duration_s=raw["targetDuration"] or 0.0,
            errors_dropped=raw["errorsDropped"] + self._errors_dropped,
        )

    async def close(self) -> None:
        """Stop hls.js: no more loads, the video detached."""
        await self.page.evaluate("() => harness.hls.destroy()")

    async def _wait(self, condition: str, deadline: float) -> None:
        """Wait until condition (a function of the video) holds or hls.js failed fatally."""
        from playwright.async_api import TimeoutError as PlaywrightTimeoutError  # noqa: PLC0415

        remaining = max(deadline - asyncio.get_running_loop().time(), 0.1)
        check = f"() => harness.state.fatal !== null || ({condition})(harness.video)"
        try:
            await self.page.wait_for_function(check, timeout=remaining * 1000)
        except PlaywrightTimeoutError:
            stats, errors = await self.stats(), await self.errors()
            raise AssertionError(f"not {condition}: {stats}, errors {errors}") from None
        fatal = await self.page.evaluate("() => harness.state.fatal")
        assert fatal is None, f"hls.js fatal error: {fatal}"

    def _record(self, error: PlayerError) -> None:
        """Keep error, up to MAX_ERRORS."""
        if len(self._errors) < MAX_ERRORS:
            self._errors.append(error)
        else:
            self._errors_dropped += 1

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            url = message.location.get("url", "")
            self._record(PlayerError(ErrorSource.CONSOLE, "error", "", False, message.text, url))

    def _on_page_error(self, error: Error) -> None:
        self._record(PlayerError(ErrorSource.PAGE, error.name or "Error", "", False, error.message))


async def open_player(
    page: Page, url: str, script: Path, config: Mapping[str, object] | None = None
) -> HlsPlayer:
    """Return hls.js (script: hls.min.js) playing the playlist at url in page.

    config: hls.js settings over ``DEFAULT_CONFIG`` (``lowLatencyMode: true``).
    """
    player = HlsPlayer(page)
    await player.start(url, script, config)
    return player


class OpenPlayer(Protocol):
    """Opens hls.js on a playlist in the test's page."""

    async def __call__(self, url: str, config: Mapping[str, object] | None = None) -> HlsPlayer: ...
