"""LL-HLS: CPU per viewer, part availability after capture, hls.js latency; vs the ffmpeg CLI.

One simulator (``gateway sim --fps 25``, 640x480) and one ``gateway serve`` with one camera
on it (MJPEG only, default ``[cameras.h264]`` and ``[hls]``: 1 s segments, 0.2 s parts),
each its own process. In one run:

- **idle**: the gateway before any HLS request (the MJPEG ingest alone);
- **1, 10 and 100 LL-HLS viewers** of ``/hls/bench/index.m3u8``: one is a reader in this
  process (a thread) that decodes every part it fetches; the others are lightweight
  clients in the load generator's process (``hls_viewers.py``). Every viewer loops as a
  minimal LL-HLS client: a blocking media playlist request (``_HLS_msn``/``_HLS_part`` of
  the preload hint), then a GET of each part it has not fetched. Over a window per
  count: the gateway's CPU time (all threads; its event-loop thread apart), what the
  viewers fetched, and **part availability**: when a part's response completed minus
  the capture time of the part's first picture. The load generator's viewers take that
  capture time from the playlist (EXT-X-PROGRAM-DATE-TIME plus the parts before); the
  decoding reader reads it off the picture itself (the simulator paints its capture
  time, ``read_block_code``), which also checks the playlist's clock. Added CPU per
  viewer = (CPU at 100 - CPU at 1) / 99;
- **hls.js in Chromium** (tests/web/hls_player.py's harness: system Chromium through
  Playwright, hls.js from tests/web/node_modules, ``lowLatencyMode``) plays the gateway's
  playlist three times: from a cold start (its first request starts the session and the
  encode, as for a camera nobody watches; ``[hls] idle_seconds = 2`` here, so the next
  run starts cold again); from a cold start where this process first waits for the
  session's first segment (a blocking ``_HLS_msn=0``), as if the gateway held its first
  playlist until then; and after the viewer steps, joining a running session.
  **Glass-to-player** = when Chromium expects a picture on screen minus the capture time
  painted in it (tests/web/frames.py), sampled over the playback;
- **ffmpeg CLI**: the gateway stopped, tests/web/ffmpeg_hls.py's command (the
  simulator's MJPEG -> libx264 -> the HLS muxer's fMP4 segments of 1 s, what a user would
  otherwise run) with the gateway's x264 preset (``veryfast``; the full run also the
  harness's ``ultrafast``): its CPU time; **segment availability**, when a segment
  appears in its playlist on disk (polled every 10 ms) minus its first picture's capture
  time; and hls.js on its stream, served from the directory by this process.

Budgets (issue 9): added CPU per LL-HLS viewer <= 0.2% of a core; hls.js glass-to-player
<= 1.5 s (aim 1.0 s), median, judged for each of the three runs.

    python benchmarks/bench_hls.py [--quick] [--window S]

Needs the ffmpeg CLI, Chromium and Playwright (``apt-get install ffmpeg chromium``) and
hls.js (``npm ci --prefix tests/web``). The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from bench_encode import loop_cpu_seconds, switches
from bench_fanout import ROOT, LoadGen, cpu_seconds, simulator, spawn, status, stop
from bench_fanout import gateway as run_gateway
from hls_viewers import MediaPlaylist, first_to_fetch, next_part, parse_media_playlist

from gateway.sim.pattern import read_block_code

if TYPE_CHECKING:
    from av.video.codeccontext import VideoCodecContext

FPS = 25
CAMERA = "bench"
INDEX_PATH = f"/hls/{CAMERA}/index.m3u8"
#: What the gateway's ingest and ffmpeg ask the simulator for.
MJPEG_PATH = "/axis-cgi/mjpg/video.cgi?fps=25"
COUNTS = (1, 10, 100)
SEGMENT_SECONDS = 1.0
#: Issue 9.
BUDGET_VIEWER_PERCENT = 0.2
BUDGET_LATENCY_S = 1.5
AIM_LATENCY_S = 1.0
#: The hls.js runs on the gateway: opening a camera nobody watches (at once, then once its
#: first segment is complete), and joining the session the viewers kept running.
HLSJS_RUNS = ("cold", "cold_first_segment", "warm")
#: Seconds one round of hls.js latency samples may take (a few pictures at 25 fps).
ROUND_LIMIT_S = 10.0
#: How often the ffmpeg watcher looks at the playlist on disk.
POLL_S = 0.01

GATEWAY_TOML = """\
[server]
listen = "127.0.0.1:{port}"

[limits]
max_clients_per_camera = 5000

[hls]
segment_seconds = 1.0
part_seconds = 0.2
idle_seconds = 2.0

[[cameras]]
name = "bench"
source = "http://127.0.0.1:{sim_port}"
mjpeg = true
mpeg2 = false
audio = false
fps = 25
"""


def harness_path() -> None:
    """Put the checkout on sys.path: the hls.js harness lives in tests/, which is not installed."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def r1(value: float) -> float:
    """Round to one decimal (the JSON's milliseconds)."""
    return round(value, 1)


def spread(values: Sequence[float], prefix: str) -> dict[str, float | int]:
    """Return the median, p95, min, max and count of ``values`` under ``prefix``."""
    if not values:
        return {f"{prefix}_n": 0}
    return {
        f"{prefix}_median": r1(statistics.median(values)),
        f"{prefix}_p95": r1(float(np.percentile(values, 95))),
        f"{prefix}_min": r1(min(values)),
        f"{prefix}_max": r1(max(values)),
        f"{prefix}_n": len(values),
    }


# -- reading the capture time off fMP4 pictures ----------------------------------------


class PictureClock:
    """Decodes fMP4 media (init + fragments) in order; reads each picture's capture time."""

    def __init__(self) -> None:
        self._decoder: VideoCodecContext | None = None
        self._extradata: bytes | None = None
        #: Pictures that came out of the decoder later than their packet went in.
        self.delayed = 0

    def captures(self, init: bytes, media: bytes) -> list[int | None]:
        """Return the capture time (unix ns; None: unreadable) of each picture in media."""
        with av.open(io.BytesIO(init + media), mode="r", format="mp4") as container:
            stream = container.streams.video[0]
            extradata = stream.codec_context.extradata
            packets = [p for p in container.demux(stream) if p.size]
        if self._decoder is None or extradata != self._extradata:
            decoder = av.CodecContext.create("h264", "r")
            decoder.extradata = extradata
            decoder.thread_count = 1  # frame threads would hold pictures back
            self._decoder, self._extradata = decoder, extradata
        assert self._decoder is not None
        out: list[int | None] = []
        for packet in packets:
            pictures = self._decoder.decode(packet)
            self.delayed += len(pictures) != 1
            for picture in pictures:
                plane = picture.planes[0]
                luma = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
                code = read_block_code(luma[: picture.height, : picture.width])
                out.append(None if code is None else code[1])
        return out


@dataclass(frozen=True, slots=True)
class Piece:
    """A part (or an ffmpeg segment) a reader got and decoded."""

    #: Monotonic seconds when it was got (to sort it into a window).
    at: float
    #: When its response completed, or it appeared on disk; unix ns.
    done_ns: int
    #: Capture time of its first and last picture, unix ns (None: unreadable).
    first_ns: int | None
    last_ns: int | None
    #: Its start by the playlist's EXT-X-PROGRAM-DATE-TIME, unix ns (None: not given).
    pdt_ns: int | None
    #: Pictures in it.
    pictures: int


@dataclass
class Reader:
    """A thread of this process that reads and decodes a stream's pieces."""

    pieces: list[Piece] = field(default_factory=list)
    error: BaseException | None = None
    clock: PictureClock = field(default_factory=PictureClock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._guarded, name=type(self).__name__)
        self._thread.daemon = True
        self._thread.start()

    def wait_first(self, timeout: float = 30.0) -> None:
        """Wait until the first piece is decoded."""
        deadline = time.monotonic() + timeout
        while not self.pieces:
            if self.error is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{type(self).__name__} got nothing: {self.error!r}")
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)

    def between(self, t0: float, t1: float) -> list[Piece]:
        return [p for p in self.pieces if t0 <= p.at <= t1]

    def _guarded(self) -> None:
        try:
            self._run()
        except Exception as exc:  # reported with the figures
            self.error = exc

    def _run(self) -> None:
        raise NotImplementedError

    def _decoded(self, init: bytes, media: bytes, done_ns: int, pdt_ns: int | None) -> None:
        captures = self.clock.captures(init, media)
        first = captures[0] if captures else None
        last = captures[-1] if captures else None
        self.pieces.append(Piece(time.monotonic(), done_ns, first, last, pdt_ns, len(captures)))


@dataclass
class PartReader(Reader):
    """One LL-HLS viewer of the gateway, as hls_viewers.py's, that decodes every part."""

    port: int = 0
    #: Playlists and part bytes fetched.
    playlists: int = 0
    received_bytes: int = 0

    def _get(self, conn: http.client.HTTPConnection, path: str) -> tuple[bytes, int]:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        done = time.time_ns()
        if response.status != 200:
            raise RuntimeError(f"{response.status} for {path}")
        return body, done

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            index, _ = self._get(conn, INDEX_PATH)
            media = next(line for line in index.decode().splitlines() if line[:1] != "#")
            session, name = media.rsplit("/", 1)
            base = f"/hls/{CAMERA}/{session}/"
            playlist = parse_media_playlist(self._get(conn, base + name)[0].decode())
            last = first_to_fetch(playlist)
            inits: dict[str, bytes] = {}
            decoding = False
            while not self._stop.is_set():
                msn, part = next_part(playlist, last)
                query = f"{base}{name}?_HLS_msn={msn}&_HLS_part={part}"
                playlist = parse_media_playlist(self._get(conn, query)[0].decode())
                self.playlists += 1
                init = self._init(conn, base, playlist, inits)
                for ref in playlist.parts:
                    if (ref.msn, ref.index) <= last:
                        continue
                    data, done = self._get(conn, base + ref.uri)
                    self.received_bytes += len(data)
                    last = (ref.msn, ref.index)
                    # Decoding starts at an IDR: a part that does not start with one needs
                    # the parts before it.
                    decoding = decoding or ref.independent
                    if decoding:
                        self._decoded(init, data, done, ref.start_ns)
        finally:
            conn.close()

    def _init(
        self,
        conn: http.client.HTTPConnection,
        base: str,
        playlist: MediaPlaylist,
        inits: dict[str, bytes],
    ) -> bytes:
        assert playlist.init is not None, "no EXT-X-MAP"
        if playlist.init not in inits:
            inits[playlist.init] = self._get(conn, base + playlist.init)[0]
        return inits[playlist.init]


@dataclass
class SegmentWatcher(Reader):
    """Watches ffmpeg's HLS directory: each new segment, when it is listed, decoded."""

    directory: Path = Path()

    def _run(self) -> None:
        playlist = self.directory / "index.m3u8"
        seen: set[str] | None = None  # segments listed before the first look are not timed
        mtime = 0
        while not self._stop.wait(POLL_S):
            try:
                stat = playlist.stat()
                if stat.st_mtime_ns == mtime:
                    continue
                mtime = stat.st_mtime_ns
                text = playlist.read_text()
            except FileNotFoundError:
                continue
            now = time.time_ns()
            names = [line for line in text.splitlines() if line and line[0] != "#"]
            if seen is None:
                seen = set(names)
                continue
            for segment in names:
                if segment in seen:
                    continue
                seen.add(segment)
                init = (self.directory / "init.mp4").read_bytes()
                self._decoded(init, (self.directory / segment).read_bytes(), now, None)


# -- hls.js in Chromium ----------------------------------------------------------------


async def play_in_hlsjs(
    url: str, *, rounds: int, per_round: int, settle: float, config: dict[str, object] | None = None
) -> dict[str, Any]:
    """Have hls.js in Chromium play url; return its glass-to-player latency and figures.

    ``config``: hls.js settings over the harness's (``lowLatencyMode: true``).
    """
    harness_path()
    from playwright.async_api import async_playwright  # noqa: PLC0415

    from tests.web.conftest import CHROMIUM_FLAGS, HLS_JS, chromium_path  # noqa: PLC0415
    from tests.web.hls_player import open_player  # noqa: PLC0415

    chromium = chromium_path()
    if chromium is None or not HLS_JS.is_file():
        raise SystemExit("needs Chromium and hls.js: apt-get install chromium; "
                         "npm ci --prefix tests/web")  # fmt: skip
    shown: list[list[float]] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 600})
            t0 = time.monotonic()
            player = await open_player(page, url, HLS_JS, config)
            await player.wait_playing(0.5, within=45.0)
            start_s = time.monotonic() - t0
            await asyncio.sleep(settle)
            stalled = 0
            for _ in range(rounds):
                try:
                    # A stalled video shows no picture to read: bound the wait.
                    async with asyncio.timeout(ROUND_LIMIT_S):
                        samples = await player.latency_samples(per_round)
                except TimeoutError:
                    stalled += 1
                    continue
                shown.append([s.latency_ns / 1e6 for s in samples])
                await asyncio.sleep(1.0)
            stats = await player.stats()
            errors = await player.errors()
            await player.close()
        finally:
            await browser.close()
    latency = [ms for samples in shown for ms in samples]
    return {
        "hlsjs_version": player.version,
        "config": config or {},
        "start_s": round(start_s, 2),
        **spread(latency, "glass_to_player_ms"),
        # The first and the last round's: whether the player closed in on its target.
        "first_round_ms": r1(statistics.median(shown[0])) if shown else None,
        "last_round_ms": r1(statistics.median(shown[-1])) if shown else None,
        "stalled_rounds": stalled,
        "hls_latency_s": round(stats.latency_s, 3),
        "hls_target_latency_s": stats.target_latency_s,
        "buffer_s": round(stats.buffer_s, 3),
        "playback_rate": stats.playback_rate,
        "fragments_loaded": stats.fragments_loaded,
        "parts_loaded": stats.parts_loaded,
        "playlist_updates": stats.playlist_updates,
        "can_block_reload": stats.can_block_reload,
        "dropped_frames": stats.dropped_frames,
        "total_frames": stats.total_frames,
        "errors": [f"{e.source}:{e.details or e.type}:{e.message[:80]}" for e in errors][:5],
        "error_count": len(errors),
    }


# -- the gateway -----------------------------------------------------------------------


def hls_summary(port: int) -> dict[str, Any]:
    """Return the camera's ``outputs.hls`` from ``/api/cameras``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras", timeout=5) as answer:
        cameras = json.load(answer)
    found: dict[str, Any] = cameras["cameras"][0]["outputs"]["hls"]
    return found


async def call(gen: LoadGen, **command: Any) -> dict[str, Any]:
    """Send the load generator a command without blocking the event loop."""
    return await asyncio.to_thread(gen.call, **command)


def availability(pieces: list[Piece]) -> dict[str, float | int]:
    """Return the decoded pieces' availability after the capture of their first and last
    picture, and how far the playlist's clock is from the painted one."""
    first = [(p.done_ns - p.first_ns) / 1e6 for p in pieces if p.first_ns]
    last = [(p.done_ns - p.last_ns) / 1e6 for p in pieces if p.last_ns]
    pdt = [(p.pdt_ns - p.first_ns) / 1e6 for p in pieces if p.first_ns and p.pdt_ns]
    out = spread(first, "after_first_picture_ms") | spread(last, "after_last_picture_ms")
    if pdt:
        out["pdt_minus_capture_ms_median"] = r1(statistics.median(pdt))
    out["pictures_per_piece"] = round(statistics.fmean(p.pictures for p in pieces), 2)
    out["unreadable"] = sum(p.first_ns is None for p in pieces)
    return out


async def measure_step(
    n: int, pid: int, port: int, gen: LoadGen, reader: PartReader, window: float
) -> dict[str, Any]:
    """Measure the gateway over window seconds with n viewers open (the reader among them)."""
    before = await call(gen, cmd="stats")
    await call(gen, cmd="samples")  # the warm-up's
    cpu0, loop0, switches0 = cpu_seconds(pid), loop_cpu_seconds(pid), switches(pid)
    t0, playlists0, bytes0 = time.monotonic(), reader.playlists, reader.received_bytes
    await asyncio.sleep(window)
    cpu1, loop1, switches1 = cpu_seconds(pid), loop_cpu_seconds(pid), switches(pid)
    t1, playlists1, bytes1 = time.monotonic(), reader.playlists, reader.received_bytes
    after = await call(gen, cmd="stats")
    samples = (await call(gen, cmd="samples"))["availability_ms"]
    seconds = t1 - t0
    pieces = reader.between(t0, t1)
    samples += [(p.done_ns - p.pdt_ns) / 1e6 for p in pieces if p.pdt_ns]
    per = [b - a for a, b in zip(before["per_client"], after["per_client"], strict=False)]
    per.append(len(pieces))
    rss, threads = status(pid)
    row: dict[str, Any] = {
        "viewers": n,
        "seconds": round(seconds, 2),
        "core_percent": round(100 * (cpu1 - cpu0) / seconds, 3),
        "loop_core_percent": round(100 * (loop1 - loop0) / seconds, 3),
        "switches_per_s": round((switches1 - switches0) / seconds, 1),
        "parts_per_s_min": round(min(per) / seconds, 2),
        "parts_per_s_mean": round(statistics.fmean(per) / seconds, 2),
        "playlists_per_s": round(
            (after["playlists"] - before["playlists"] + playlists1 - playlists0) / seconds, 1
        ),
        "kb_per_part": round(
            (after["bytes"] - before["bytes"] + bytes1 - bytes0) / max(sum(per), 1) / 1e3, 1
        ),
        "errors": after["errors"] - before["errors"],
        "loadgen_core_percent": round(100 * (after["cpu"] - before["cpu"]) / seconds, 1),
        "rss_mb": round(rss, 1),
        "threads": threads,
        **spread(samples, "availability_ms"),
        "decoded": availability(pieces),
    }
    if after["kinds"]:
        row["error_kinds"] = after["kinds"]
    return row


async def measure_gateway(
    args: argparse.Namespace, sim_port: int, tmp: Path, gen: LoadGen
) -> dict[str, Any]:
    """Run the gateway: idle, 1/10/100 LL-HLS viewers, then hls.js; return its figures."""
    result: dict[str, Any] = {}
    with run_gateway(sim_port, tmp, GATEWAY_TOML) as (proc, port):
        pid = proc.pid
        await asyncio.sleep(2.0)  # the ingest connects
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(args.window)
        idle = 100 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        result["idle_core_percent"] = round(idle, 3)
        print(f"gateway idle (MJPEG ingest alone): {idle:.2f}% of a core", flush=True)
        # hls.js opening the stream of a camera nobody watches: the session (and the encode)
        # start with it; then the same once the session's first segment is complete.
        url = f"http://127.0.0.1:{port}{INDEX_PATH}"
        for name in ("cold", "cold_first_segment"):
            print(f"  hls.js in Chromium, {name.replace('_', ', ')}", flush=True)
            waited = None
            if name == "cold_first_segment":
                waited = await asyncio.to_thread(first_segment, port)
            result[f"hlsjs_{name}"] = await play_in_hlsjs(
                url, rounds=args.rounds, per_round=3, settle=args.settle
            )
            result[f"hlsjs_{name}"]["first_segment_waited_s"] = waited
            await asyncio.to_thread(wait_stopped, port)
        t_start = time.monotonic()
        reader = PartReader(port=port)
        reader.start()
        await asyncio.to_thread(reader.wait_first)
        result["first_part_s"] = round(time.monotonic() - t_start, 2)
        rows = []
        try:
            have = 1
            for n in COUNTS:
                if n > have:
                    reply = await call(gen, cmd="open", port=port, camera=CAMERA, n=n - have)
                    if reply["failed"]:
                        print(f"  {reply['failed']} viewers failed: {reply['errors']}")
                    have = n
                await asyncio.sleep(args.warmup)
                row = await measure_step(n, pid, port, gen, reader, args.window)
                row["api_viewers"] = hls_summary(port)["viewers"]
                rows.append(row)
                print(
                    f"  {n:>3} viewers: {row['core_percent']:6.2f}% of a core "
                    f"(loop {row['loop_core_percent']:5.2f}%), parts/s per viewer min "
                    f"{row['parts_per_s_min']:.2f}, part available "
                    f"{row.get('availability_ms_median')} ms (p95 "
                    f"{row.get('availability_ms_p95')}) after its first frame, errors "
                    f"{row['errors']}, loadgen {row['loadgen_core_percent']}%",
                    flush=True,
                )
        finally:
            await call(gen, cmd="close")
            reader.close()
        if reader.error is not None:
            result["reader_error"] = repr(reader.error)
        result["decoder_delayed_pictures"] = reader.clock.delayed
        result["steps"] = rows
        summary = hls_summary(port)
        result["cold_start_s"] = summary["cold_start_seconds"]
        result["starts"] = summary["starts"]
        print("  hls.js in Chromium, the session warm", flush=True)
        result["hlsjs_warm"] = await play_in_hlsjs(
            url, rounds=args.rounds, per_round=3, settle=args.settle
        )
    return result


def first_segment(port: int) -> float:
    """Start the camera's session; return the seconds until its first segment is complete.

    A blocking request for segment 0 (``_HLS_msn=0``) is answered then: the player that
    starts next finds a whole segment, as it would if the gateway answered its first
    playlist only then.
    """
    t0 = time.monotonic()
    base = f"http://127.0.0.1:{port}/hls/{CAMERA}/"
    with urllib.request.urlopen(base + "index.m3u8", timeout=10) as answer:
        media = answer.read().decode().splitlines()[-1]
    with urllib.request.urlopen(f"{base}{media}?_HLS_msn=0", timeout=10) as answer:
        answer.read()
    return round(time.monotonic() - t0, 2)


def wait_stopped(port: int, timeout: float = 30.0) -> None:
    """Wait until the camera's HLS session and its H.264 encode have stopped."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras", timeout=5) as answer:
            camera = json.load(answer)["cameras"][0]
        encoding = any(r["kind"] == "h264" for r in camera["renditions"])
        if camera["outputs"]["hls"]["state"] == "idle" and not encoding:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the HLS session did not stop")
        time.sleep(0.25)


# -- the ffmpeg CLI --------------------------------------------------------------------


async def measure_ffmpeg(
    args: argparse.Namespace, sim_port: int, tmp: Path, preset: str, *, hlsjs: bool
) -> dict[str, Any]:
    """Run the ffmpeg CLI's HLS muxer on the simulator; return its CPU, availability, hls.js."""
    harness_path()
    from tests.web.ffmpeg_hls import PLAYLIST, hls_command, serve_directory  # noqa: PLC0415

    directory = tmp / f"ffmpeg-{preset}"
    directory.mkdir()
    source = f"http://127.0.0.1:{sim_port}{MJPEG_PATH}"
    command = hls_command("ffmpeg", source, directory, segment_seconds=SEGMENT_SECONDS, list_size=6)
    command[command.index("-preset") + 1] = preset
    result: dict[str, Any] = {"preset": preset, "command": " ".join(command[1:])}
    with (tmp / f"ffmpeg-{preset}.log").open("wb") as log:
        proc = spawn(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    watcher = SegmentWatcher(directory=directory)
    try:
        async with serve_directory(directory) as base:
            deadline = time.monotonic() + 20
            while not (directory / PLAYLIST).exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ffmpeg wrote no playlist (see {log.name})")
                await asyncio.sleep(0.1)
            watcher.start()
            await asyncio.sleep(args.warmup)
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            await asyncio.sleep(args.window)
            cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
            pieces = watcher.between(t0, t1)
            result["core_percent"] = round(100 * (cpu1 - cpu0) / (t1 - t0), 3)
            result["segments"] = availability(pieces)
            print(
                f"ffmpeg ({preset}): {result['core_percent']:.2f}% of a core, segment listed "
                f"{result['segments'].get('after_first_picture_ms_median')} ms after its "
                "first picture",
                flush=True,
            )
            if hlsjs:
                print("  hls.js in Chromium on ffmpeg's playlist", flush=True)
                result["hlsjs"] = await play_in_hlsjs(
                    base + PLAYLIST, rounds=args.rounds, per_round=3, settle=args.settle
                )
    finally:
        watcher.close()
        stop(proc)
    if watcher.error is not None:
        result["watcher_error"] = repr(watcher.error)
    return result


# -- the report ------------------------------------------------------------------------


def summarize(gateway: dict[str, Any], ffmpegs: list[dict[str, Any]]) -> dict[str, Any]:
    """Print the headline table; return the budgets' figures."""
    steps = {row["viewers"]: row for row in gateway["steps"]}
    one, top = steps[COUNTS[0]], steps[COUNTS[-1]]
    per_viewer = (top["core_percent"] - one["core_percent"]) / (COUNTS[-1] - COUNTS[0])
    per_viewer_loop = (top["loop_core_percent"] - one["loop_core_percent"]) / (
        COUNTS[-1] - COUNTS[0]
    )
    mid = steps[COUNTS[1]]
    per_viewer_10 = (mid["core_percent"] - one["core_percent"]) / (COUNTS[1] - COUNTS[0])
    out: dict[str, Any] = {
        "per_viewer_core_percent": round(per_viewer, 4),
        "per_viewer_loop_core_percent": round(per_viewer_loop, 4),
        "per_viewer_core_percent_1_to_10": round(per_viewer_10, 4),
        "budget_viewer_met": per_viewer <= BUDGET_VIEWER_PERCENT,
    }
    verdicts = []
    for run in HLSJS_RUNS:
        latency = gateway[f"hlsjs_{run}"].get("glass_to_player_ms_median")
        met = latency is not None and latency <= BUDGET_LATENCY_S * 1e3
        aim = latency is not None and latency <= AIM_LATENCY_S * 1e3
        out |= {
            f"hlsjs_{run}_glass_to_player_ms_median": latency,
            f"budget_latency_{run}_met": met,
            f"aim_latency_{run}_met": aim,
        }
        verdicts.append(
            f"{run} {latency} ms: {'met' if met else 'NOT MET'}, aim {'met' if aim else 'not met'}"
        )
    print(f"{'system':<32} {'% of a core':>11} {'part/segment available':>22} "
          f"{'hls.js glass-to-player':>22}")  # fmt: skip
    print(f"{'':<32} {'':>11} {'after 1st picture, ms':>22} {'ms':>22}")
    rows: list[tuple[str, float | None, dict[str, Any], dict[str, Any]]] = [
        (f"gateway, {row['viewers']} LL-HLS viewers", row["core_percent"], row["decoded"], {})
        for row in gateway["steps"]
    ]
    rows += [(f"gateway, hls.js {run}", None, {}, gateway[f"hlsjs_{run}"]) for run in HLSJS_RUNS]
    rows += [
        (f"ffmpeg CLI, {ff['preset']}", ff["core_percent"], ff["segments"], ff.get("hlsjs", {}))
        for ff in ffmpegs
    ]
    for name, core, available, js in rows:
        print(
            f"{name:<32} {'' if core is None else f'{core:.2f}':>11} "
            f"{_median_p95(available, 'after_first_picture_ms'):>22} "
            f"{_median_p95(js, 'glass_to_player_ms'):>22}"
        )
    print(
        f"added CPU per LL-HLS viewer {per_viewer:.3f}% of a core (1 -> 100; loop thread "
        f"{per_viewer_loop:.3f}%; 1 -> 10: {per_viewer_10:.3f}%), budget "
        f"{BUDGET_VIEWER_PERCENT}%: {'met' if out['budget_viewer_met'] else 'NOT MET'}; "
        f"hls.js glass-to-player (median; budget {BUDGET_LATENCY_S * 1e3:.0f} ms, aim "
        f"{AIM_LATENCY_S * 1e3:.0f} ms): " + "; ".join(verdicts)
    )
    return out


def _median_p95(figures: dict[str, Any], prefix: str) -> str:
    """Return "median (p95)" of a spread, or nothing."""
    if f"{prefix}_median" not in figures:
        return ""
    return f"{figures[f'{prefix}_median']} ({figures[f'{prefix}_p95']})"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the gateway and the ffmpeg CLI; return the JSON object."""
    presets = ["veryfast"] if args.quick else ["veryfast", "ultrafast"]
    result: dict[str, Any] = {
        "benchmark": "hls",
        "window_s": args.window,
        "counts": list(COUNTS),
    }
    gen = LoadGen("hls_viewers.py")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-hls-") as tmpdir, simulator() as sim:
            tmp = Path(tmpdir)
            _, sim_port = sim
            print(f"{args.window:.0f} s windows, {args.warmup:.0f} s warm-up", flush=True)
            result["gateway"] = await measure_gateway(args, sim_port, tmp, gen)
            ffmpegs = [
                await measure_ffmpeg(args, sim_port, tmp, preset, hlsjs=index == 0)
                for index, preset in enumerate(presets)
            ]
            result["ffmpeg"] = ffmpegs
    finally:
        gen.close()
    result |= summarize(result["gateway"], ffmpegs)
    return result


def main() -> None:
    """Parse arguments, run, print the tables and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="8 s windows, fewer hls.js samples")
    parser.add_argument("--window", type=float, help="seconds measured per step (20; 8)")
    args = parser.parse_args()
    args.window = args.window or (8.0 if args.quick else 20.0)
    args.warmup = 3.0
    args.rounds = 4 if args.quick else 10
    args.settle = 3.0 if args.quick else 6.0
    if shutil.which("ffmpeg") is None:
        raise SystemExit("needs the ffmpeg CLI: apt-get install -y ffmpeg")
    result = asyncio.run(run(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
