"""WebRTC (WHEP): the gateway's CPU per viewer against aiortc's encode per viewer; Chromium latency.

One simulator (``gateway sim --fps 25``, 640x480, G.726 audio) and, one after the other,
each its own process:

- **the gateway**: ``gateway serve`` with one camera on the simulator (MJPEG and audio;
  ``[webrtc] addresses = ["127.0.0.1"]``). Its CPU includes the camera's ingest, the audio
  decode it always runs and, while anyone watches, one shared H.264 encode and one Opus
  encode for all sessions;
- **a naive aiortc server** (``naive_webrtc.py``), the pattern of aiortc's examples: per
  viewer its own MJPEG and audio connections to the simulator, its own decode, and
  aiortc's own H.264 (libx264) and Opus encodes.

For each server: N aiortc viewers (1, 5, 10, 20; ``--quick``: 1, 5), each its own
process (``webrtc_viewers.py``: candidates on 127.0.0.1, frames counted without
decoding, except the first viewer, which decodes, counts decode errors and reads the
capture time off each picture); after a warm-up, over a window, the server's CPU
(``/proc``: all threads; its event-loop thread apart) and each viewer's frame rate.
**Added CPU per viewer** = the least-squares slope of CPU over N (also from the first
to the last step). The naive server stops growing before a step whose CPU would pass
``--naive-max-core`` (150% of a core: the machine has two, shared).

**Chromium** (system Chromium through Playwright; ``whep_harness.html``, served here)
plays each server: for every picture presented, its expected display time minus the
capture time the simulator painted in it (**glass-to-browser**), and **the first
picture** after the answer. On the gateway: cold (its first session starts the encode,
after the previous one has stopped), and warm (the encode already runs for the decoding
viewer); on the naive server, every session is its own pipeline. Sessions ask for video
and audio, as a viewer's would, and Chromium then holds the video back to play it in
sync with the audio; one more session (warm, and on the naive server) asks for video
alone: the video path's own latency.

Budgets (issue 10): added CPU per viewer <= 0.3% of a core; glass-to-browser <= 150 ms
(aim 100 ms); first picture <= 0.5 s.

    python benchmarks/bench_webrtc.py [--quick] [--window S] [--only gateway|naive] [--video-only]

Needs Chromium and Playwright (``apt-get install chromium``). The last line of stdout
is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench_fanout import HERE, ROOT, cpu_seconds, free_port, simulator, spawn, stop, wait_port
from bench_fanout import gateway as run_gateway
from bench_hls import wait_stopped
from webrtc_browser import chromium, play
from webrtc_pool import ViewerError, ViewerPool, describe, measure_step, slope

from gateway.access.tokens import TokenSigner

CAMERA = "bench"
WHEP_PATH = f"/whep/{CAMERA}"
COUNTS = (1, 5, 10, 20)
QUICK_COUNTS = (1, 5)
#: Issue 10.
BUDGET_VIEWER_PERCENT = 0.3
BUDGET_LATENCY_MS = 150.0
AIM_LATENCY_MS = 100.0
BUDGET_FIRST_PICTURE_MS = 500.0
#: Seconds between one Chromium session's end and the next one's start.
SESSION_GAP = 1.0

GATEWAY_TOML = """\
[server]
listen = "127.0.0.1:{port}"

[webrtc]
addresses = ["127.0.0.1"]

[tokens]
key = "{token_key}"

[[cameras]]
name = "bench"
source = "http://127.0.0.1:{sim_port}"
mjpeg = true
mpeg2 = false
audio = true
fps = 25
"""


def get_json(url: str) -> Any:
    """Return the JSON at url."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)


def gateway_sessions(port: int) -> int | None:
    """Return the camera's WebRTC sessions by ``/api/cameras`` (None: not reported)."""
    camera = get_json(f"http://127.0.0.1:{port}/api/cameras")["cameras"][0]
    found = camera.get("outputs", {}).get("webrtc", {}).get("sessions")
    return None if found is None else int(found)


def check_whep(url: str) -> None:
    """Fail early, and say why, when the server has no WHEP endpoint."""
    request = urllib.request.Request(url, data=b"v=0\r\n", method="POST")
    request.add_header("Content-Type", "application/sdp")
    try:
        with urllib.request.urlopen(request, timeout=5):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 405):
            raise SystemExit(f"{url}: {exc.code}: this build has no WHEP endpoint") from None


@contextmanager
def naive_server(sim_port: int, tmp: Path) -> Iterator[tuple[int, int]]:
    """Run naive_webrtc.py on a free port; yield its pid and port."""
    port = free_port()
    with (tmp / "naive.log").open("wb") as log:
        proc = spawn(
            [sys.executable, str(HERE / "naive_webrtc.py"), "--listen", f"127.0.0.1:{port}",
             "--source", f"http://127.0.0.1:{sim_port}"],
            cwd=ROOT, stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        try:
            wait_port(port, proc)
            yield proc.pid, port
        finally:
            stop(proc)


async def chromium_sessions(
    url: str, args: argparse.Namespace, *, sessions: int, port: int | None = None
) -> dict[str, Any]:
    """Play url in Chromium: the first session for the latency window, the rest for their
    first picture; then (unless cold) one video-only session for the latency window too.

    ``port``: the gateway's; each session then starts cold.
    """
    runs: list[dict[str, Any]] = []
    video_only: dict[str, Any] | None = None
    async with chromium() as page:
        for index in range(sessions + (port is None)):
            if port is not None:
                await asyncio.to_thread(wait_stopped, port)
            elif index:
                # Arrivals apart: past the gateway's keyframe-request rate limit (0.5 s),
                # so each session's request is granted (bursts: the viewers' first frames).
                await asyncio.sleep(SESSION_GAP)
            if index == sessions:  # the video path alone, without lip sync to the audio
                video_only = await play(
                    page, url, seconds=args.latency_window, settle=args.settle, audio=False
                )
                break
            seconds = args.latency_window if index == 0 else 0.0
            runs.append(await play(page, url, seconds=seconds, settle=args.settle))
    out = dict(runs[0])
    if video_only is not None:
        out["video_only"] = video_only
    firsts = [r["first_picture_after_answer_ms"] for r in runs]
    out["first_picture_ms_all"] = firsts
    out["first_picture_ms_median"] = round(statistics.median(firsts), 1)
    out["first_picture_ms_max"] = max(firsts)
    print(
        f"  Chromium: glass-to-browser {out.get('glass_to_browser_ms_median')} ms "
        f"(p95 {out.get('glass_to_browser_ms_p95')}; packets in after "
        f"{out.get('glass_to_receive_ms_median')} ms), {out.get('presented_fps')} fps; first "
        f"picture after the answer {firsts} ms; pair {out.get('inbound', {}).get('pair')}",
        flush=True,
    )
    if video_only is not None:
        print(
            f"  Chromium, video only: glass-to-browser {video_only['glass_to_browser_ms_median']}"
            f" ms (p95 {video_only['glass_to_browser_ms_p95']})",
            flush=True,
        )
    return out


async def viewer_steps(
    url: str, pid: int, counts: tuple[int, ...], args: argparse.Namespace, pool: ViewerPool,
    *, sessions: Any = None, max_core: float | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Grow the pool through counts; measure each step."""
    rows: list[dict[str, Any]] = []
    for n in counts:
        if max_core is not None and len(rows) >= 2:
            per = slope(rows) or 0.0
            projected = rows[-1]["core_percent"] + per * (n - rows[-1]["viewers"])
            if projected > max_core:
                print(f"  {n} viewers skipped: about {projected:.0f}% of a core projected")
                rows.append({"viewers": n, "skipped_projected_core_percent": round(projected)})
                break
        have = len(pool.viewers)
        await pool.grow_to(n)
        if pool.failures:
            print(f"  viewers that failed so far: {len(pool.failures)}: {pool.failures[-1]}")
        await asyncio.sleep(args.warmup)
        row = await measure_step(pool, pid, args.window, sessions)
        # The viewers this step added: offer sent -> first complete video frame.
        row["first_frame_s"] = [v.ready.get("first_frame_s") for v in pool.viewers[have:]]
        rows.append(row)
        print(describe(row), flush=True)
    return rows


async def measure_gateway(args: argparse.Namespace, sim_port: int, tmp: Path) -> dict[str, Any]:
    """Run the gateway: idle, Chromium cold, the viewer steps, Chromium warm."""
    result: dict[str, Any] = {}
    # The harness page is another origin: a viewing token lets it POST (the gateway
    # refuses cross-site requests that carry no token).
    key = secrets.token_urlsafe(24)
    token = TokenSigner(key.encode()).issue([CAMERA], now=time.time(), ttl=3600)
    with run_gateway(sim_port, tmp, GATEWAY_TOML, token_key=key) as (proc, port):
        url = f"http://127.0.0.1:{port}{WHEP_PATH}?token={token}"
        check_whep(url)
        await asyncio.sleep(2.0)  # the ingest connects
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        await asyncio.sleep(args.idle)
        idle = 100 * (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
        result["idle_core_percent"] = round(idle, 3)
        print(f"gateway idle (ingest and audio decode): {idle:.2f}% of a core", flush=True)
        print("  Chromium, cold (each session starts the encode)", flush=True)
        result["chromium_cold"] = await chromium_sessions(
            url, args, sessions=args.cold_sessions, port=port
        )
        pool = ViewerPool(url, audio=not args.video_only)
        try:

            async def sessions() -> int | None:
                return await asyncio.to_thread(gateway_sessions, port)

            result["steps"] = await viewer_steps(
                url, proc.pid, args.counts, args, pool, sessions=sessions
            )
            await pool.shrink_to(1)
            print("  Chromium, warm (the encode runs for the decoding viewer)", flush=True)
            result["chromium_warm"] = await chromium_sessions(url, args, sessions=args.sessions)
        finally:
            result["viewer_failures"] = pool.failures
            await pool.close()
    return result


async def measure_naive(args: argparse.Namespace, sim_port: int, tmp: Path) -> dict[str, Any]:
    """Run the naive aiortc server: the viewer steps, then Chromium."""
    result: dict[str, Any] = {}
    with naive_server(sim_port, tmp) as (pid, port):
        url = f"http://127.0.0.1:{port}{WHEP_PATH}"
        print("naive aiortc server (a decode and an encode per viewer)", flush=True)
        pool = ViewerPool(url, audio=not args.video_only)

        async def sessions() -> int | None:
            found = await asyncio.to_thread(get_json, f"http://127.0.0.1:{port}/sessions")
            return int(found["sessions"])

        try:
            result["steps"] = await viewer_steps(
                url, pid, args.counts, args, pool, sessions=sessions, max_core=args.naive_max_core
            )
            await pool.shrink_to(0)
            print("  Chromium", flush=True)
            result["chromium"] = await chromium_sessions(url, args, sessions=args.sessions)
        finally:
            result["viewer_failures"] = pool.failures
            await pool.close()
    return result


def per_viewer(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the added CPU per viewer: least squares, and first to last step."""
    rows = [r for r in steps if "core_percent" in r]
    out: dict[str, Any] = {"per_viewer_core_percent": slope(rows)}
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        out["per_viewer_core_percent_ends"] = round(
            (b["core_percent"] - a["core_percent"]) / (b["viewers"] - a["viewers"]), 4
        )
    return out


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Print the headline table; return the budgets' figures."""
    out: dict[str, Any] = {}
    gateway, naive = result.get("gateway"), result.get("naive")
    print(f"{'server, viewers':<26} {'% of a core':>11} {'fps min/mean':>13} "
          f"{'glass-to-aiortc ms':>19} {'viewers %':>9}")  # fmt: skip
    for name, figures in (("gateway", gateway), ("naive aiortc", naive)):
        if figures is None:
            continue
        for row in figures["steps"]:
            if "core_percent" not in row:
                print(f"{name + ', ' + str(row['viewers']):<26} {'skipped':>11}")
                continue
            print(
                f"{name + ', ' + str(row['viewers']):<26} {row['core_percent']:>11.2f} "
                f"{row['fps_min']:>6.1f}/{row['fps_mean']:<6.1f} "
                f"{row.get('glass_to_aiortc_ms_median', ''):>19} "
                f"{row['viewers_core_percent']:>9.0f}"
            )
        for key, value in per_viewer(figures["steps"]).items():
            out[f"{name.split()[0]}_{key}"] = value
    if gateway is not None:
        per = out["gateway_per_viewer_core_percent"]
        out["budget_viewer_met"] = per is not None and per <= BUDGET_VIEWER_PERCENT
        for run in ("cold", "warm"):
            chrome = gateway[f"chromium_{run}"]
            latency = chrome.get("glass_to_browser_ms_median")
            first = chrome["first_picture_ms_max"]
            out |= {
                f"chromium_{run}_glass_to_browser_ms_median": latency,
                f"chromium_{run}_glass_to_browser_ms_p95": chrome.get("glass_to_browser_ms_p95"),
                f"chromium_{run}_first_picture_ms_max": first,
                f"budget_latency_{run}_met": latency is not None and latency <= BUDGET_LATENCY_MS,
                f"aim_latency_{run}_met": latency is not None and latency <= AIM_LATENCY_MS,
                f"budget_first_picture_{run}_met": first <= BUDGET_FIRST_PICTURE_MS,
            }
        video = gateway["chromium_warm"].get("video_only", {})
        out["chromium_warm_video_only_glass_to_browser_ms_median"] = video.get(
            "glass_to_browser_ms_median"
        )
    if gateway is not None:
        # The viewers of a step start four at a time: arrivals in a burst.
        firsts = [s for row in gateway["steps"] for s in row.get("first_frame_s", [])]
        out["aiortc_first_frame_s_max"] = max(firsts, default=None)
        out["aiortc_first_frame_s_median"] = statistics.median(firsts) if firsts else None
    if naive is not None:
        chrome = naive["chromium"]
        out["naive_chromium_glass_to_browser_ms_median"] = chrome.get("glass_to_browser_ms_median")
        out["naive_chromium_first_picture_ms_max"] = chrome["first_picture_ms_max"]
        out["naive_chromium_video_only_glass_to_browser_ms_median"] = chrome.get(
            "video_only", {}
        ).get("glass_to_browser_ms_median")
    ours, theirs = (
        out.get("gateway_per_viewer_core_percent"),
        out.get("naive_per_viewer_core_percent"),
    )
    if ours and theirs:
        out["naive_over_gateway_per_viewer"] = round(theirs / ours, 1)
    budget = ""
    if "budget_viewer_met" in out:
        budget = f" (budget {BUDGET_VIEWER_PERCENT}: {_met(out['budget_viewer_met'])})"
    print(
        "added CPU per viewer (least squares; % of a core): gateway "
        f"{out.get('gateway_per_viewer_core_percent')}{budget}, naive aiortc "
        f"{out.get('naive_per_viewer_core_percent')}; ratio "
        f"{out.get('naive_over_gateway_per_viewer')}"
    )
    for run in ("cold", "warm"):
        if f"budget_latency_{run}_met" in out:
            print(
                f"Chromium on the gateway, {run}: glass-to-browser "
                f"{out[f'chromium_{run}_glass_to_browser_ms_median']} ms median (budget "
                f"{BUDGET_LATENCY_MS:.0f}: {_met(out[f'budget_latency_{run}_met'])}, aim "
                f"{AIM_LATENCY_MS:.0f}: {_met(out[f'aim_latency_{run}_met'])}); first picture "
                f"at most {out[f'chromium_{run}_first_picture_ms_max']} ms (budget "
                f"{BUDGET_FIRST_PICTURE_MS:.0f}: {_met(out[f'budget_first_picture_{run}_met'])})"
            )
    return out


def _met(met: bool) -> str:
    return "met" if met else "NOT MET"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the gateway and the naive server; return the JSON object."""
    result: dict[str, Any] = {
        "benchmark": "webrtc",
        "window_s": args.window,
        "latency_window_s": args.latency_window,
        "counts": list(args.counts),
        "video_only": args.video_only,
    }
    with tempfile.TemporaryDirectory(prefix="bench-webrtc-") as tmpdir, simulator() as sim:
        tmp = Path(tmpdir)
        _, sim_port = sim
        print(f"{args.window:.0f} s windows, {args.warmup:.0f} s warm-up", flush=True)
        if args.only in (None, "gateway"):
            result["gateway"] = await measure_gateway(args, sim_port, tmp)
        if args.only in (None, "naive"):
            result["naive"] = await measure_naive(args, sim_port, tmp)
    result |= summarize(result)
    return result


def main() -> None:
    """Parse arguments, run, print the tables and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1 and 5 viewers, 8 s windows")
    parser.add_argument("--window", type=float, help="seconds measured per step (20; 8)")
    parser.add_argument("--only", choices=["gateway", "naive"], help="measure one server")
    parser.add_argument(
        "--video-only", action="store_true", help="aiortc viewers offer no audio (Chromium does)"
    )
    parser.add_argument(
        "--naive-max-core", type=float, default=150.0,
        help="%% of a core the naive server may be projected to use at its next step",
    )  # fmt: skip
    args = parser.parse_args()
    args.window = args.window or (8.0 if args.quick else 20.0)
    args.counts = QUICK_COUNTS if args.quick else COUNTS
    args.warmup = 3.0
    args.idle = 5.0 if args.quick else 10.0
    args.latency_window = 8.0 if args.quick else 30.0
    args.settle = 2.0
    args.sessions = 3 if args.quick else 5
    args.cold_sessions = 1 if args.quick else 3
    try:
        result = asyncio.run(run(args))
    except ViewerError as exc:
        raise SystemExit(f"viewers failed: {exc}") from None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
