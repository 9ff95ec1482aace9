"""Soak: viewers joining and leaving every output while cameras drop and return, on loopback.

Three simulated cameras, each a ``gateway sim`` process of its own (15 fps, 320x240),
and one ``gateway serve`` process reading them:

- ``steady`` (MJPEG, MPEG-2, audio) never drops;
- ``flaky`` (MJPEG, audio) is killed about every 70 s (``--quick``: 50 s) and comes back
  after 5 s;
- ``blinky`` (MJPEG) is killed about every 40 s (``--quick``: 30 s) and comes back
  after 8 s.

Kills alternate SIGKILL (connections reset) and SIGTERM (the simulator closes them).
Viewers (``soak_viewers.py``, in this process) come and go in slots: each slot watches a
random eligible camera for a random while (``--quick``: 5-20 s, else 10-90 s), pauses
0.5-3 s and starts again: MJPEG (pass-through, a 160x120 variant, ``fps=5``), snapshots,
MPEG-2, audio, fMP4, LL-HLS (a polling client) and WebRTC (aiortc players on
127.0.0.1, one in five vanishing without a DELETE).

The run has two phases: a warm-up (``--quick``: 60 s, else 300 s) and the measured rest
(``--quick``: 120 s more, 3 minutes in all; else 30 minutes in all). At the end of each
phase the viewers finish, every camera is up, and the benchmark waits until the gateway
is idle again (no clients, no WebRTC session, no LL-HLS session, no encode but the held
PCM decode) before it samples the gateway process: RSS (VmRSS), open descriptors
(``/proc/<pid>/fd``), asyncio tasks (``gateway_process_tasks`` in ``/metrics``) and
threads. The budget (issue 11): RSS at the end within 5% of the warm-up figure, and no
more descriptors or tasks than after the warm-up. Each viewer's frame rate is measured
from its first frame to its last; the summary per output compares viewers of a camera
that did not drop while they watched with the rate they should get.

    python benchmarks/soak.py [--quick] [--seconds S] [--warmup S] [--seed N]

The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import soak_viewers as viewers
from bench_fanout import ROOT, free_port, spawn, status, stop, wait_port

FPS = 15
SIZE = "320x240"
#: Seconds after a camera returns before its viewers count as steady again.
RECOVERY_S = 5.0
#: Seconds the gateway may take to be idle again after the viewers left.
QUIESCE_TIMEOUT_S = 90.0
BUDGET_RSS_PERCENT = 5.0


@dataclass(frozen=True, slots=True)
class CameraPlan:
    """One simulated camera: what the gateway reads of it, and how often it drops."""

    name: str
    mpeg2: bool = False
    audio: bool = False
    #: (mean seconds between drops in a full run, in a quick run, seconds down); None: never.
    flap: tuple[float, float, float] | None = None


CAMERAS = (
    CameraPlan("steady", mpeg2=True, audio=True),
    CameraPlan("flaky", audio=True, flap=(70.0, 50.0, 5.0)),
    CameraPlan("blinky", flap=(40.0, 30.0, 8.0)),
)

GATEWAY_TOML = """\
[server]
listen = "127.0.0.1:{port}"

[webrtc]
addresses = ["127.0.0.1"]

[hls]
segment_seconds = 1.0
part_seconds = 0.2
idle_seconds = 4.0
"""
CAMERA_TOML = """
[[cameras]]
name = "{name}"
source = "http://127.0.0.1:{port}"
mjpeg = true
mpeg2 = {mpeg2}
audio = {audio}
fps = {fps}
resolution = "{size}"
"""


@dataclass(frozen=True, slots=True)
class Output:
    """A kind of viewer: how many at once, of which cameras, with which request variants."""

    kind: str
    slots: int
    #: Cameras it may watch.
    eligible: Callable[[CameraPlan], bool]
    #: Query variants, cycled through by the slots.
    variants: tuple[str, ...] = ("",)


#: The Axis endpoints of the outputs that have one (snapshot, MJPEG, MPEG-2, audio).
AXIS_PATHS = {
    "snapshot": "/axis-cgi/jpg/image.cgi",
    "mjpeg": "/axis-cgi/mjpg/video.cgi",
    "mpeg2": "/axis-cgi/mpeg2/video.cgi",
    "audio": "/axis-cgi/audio/receive.cgi",
}
OUTPUTS = (
    Output("mjpeg", 3, lambda c: True, ("", "resolution=160x120", "fps=5")),
    Output("snapshot", 1, lambda c: True),
    Output("mpeg2", 1, lambda c: c.mpeg2),
    Output("audio", 2, lambda c: c.audio),
    Output("mp4", 2, lambda c: True),
    Output("hls", 2, lambda c: True),
    Output("webrtc", 2, lambda c: True),
)


class Sim:
    """A ``gateway sim`` process on a fixed port that can be killed and started again."""

    def __init__(self, plan: CameraPlan) -> None:
        self.plan = plan
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        #: (down, up) loop times of each outage; up is None while down.
        self.outages: list[tuple[float, float | None]] = []

    def start(self) -> None:
        self.proc = spawn(
            [sys.executable, "-m", "gateway", "--log-level", "warning", "sim",
             "--listen", f"127.0.0.1:{self.port}", "--fps", str(FPS), "--size", SIZE],
            cwd=ROOT,
        )  # fmt: skip
        wait_port(self.port, self.proc)

    def kill(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait()

    def down_during(self, start: float, end: float) -> bool:
        """Return True if the camera was down (or recovering) at any time in [start, end]."""
        for down, up in self.outages:
            back = (up if up is not None else float("inf")) + RECOVERY_S
            if down <= end and back >= start:
                return True
        return False


async def flap(sim: Sim, rng: random.Random, every: float, down_s: float, until: float) -> None:
    """Kill and restart ``sim`` about every ``every`` seconds until loop time ``until``."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGKILL, signal.SIGTERM)
    n = 0
    while loop.time() + every / 2 + down_s < until:
        await asyncio.sleep(rng.uniform(every * 0.6, every * 1.4))
        if loop.time() + down_s > until:
            return
        await asyncio.to_thread(sim.kill, signals[n % 2])
        n += 1
        sim.outages.append((loop.time(), None))
        await asyncio.sleep(down_s)
        await asyncio.to_thread(sim.start)
        sim.outages[-1] = (sim.outages[-1][0], loop.time())


@dataclass(slots=True)
class Soak:
    """The run's shared state."""

    base: str
    #: For /api and /metrics: a connection per request, none left open to count.
    probe: aiohttp.ClientSession
    sims: dict[str, Sim]
    rng: random.Random
    stay: tuple[float, float]
    #: The viewers' session (one per phase: closed before the gateway is sampled).
    http: aiohttp.ClientSession | None = None
    watches: list[viewers.Watch] = field(default_factory=list)
    webrtc_n: int = 0


async def watch_once(
    soak: Soak, output: Output, camera: CameraPlan, variant: str, seconds: float
) -> viewers.Watch:
    """Run one viewer of ``output`` on ``camera`` for ``seconds``; return what it saw."""
    loop = asyncio.get_running_loop()
    watch = viewers.Watch(output.kind, camera.name, variant, start=loop.time())
    query = f"camera={camera.name}" + (f"&{variant}" if variant else "")
    base, http = soak.base, soak.http
    assert http is not None
    path = AXIS_PATHS.get(output.kind)
    run: Awaitable[None]
    if output.kind == "snapshot":
        run = viewers.snapshots(http, f"{base}{path}?{query}", watch, seconds)
    elif path is not None:
        run = viewers.stream(http, f"{base}{path}?{query}", watch, seconds)
    elif output.kind == "mp4":
        run = viewers.stream(http, f"{base}/mp4/{camera.name}", watch, seconds)
    elif output.kind == "hls":
        run = viewers.hls(http, base, watch, seconds)
    else:
        # One WebRTC viewer in five vanishes without a DELETE (consent expiry ends it).
        delete = soak.webrtc_n % 5 != 4
        run = viewers.webrtc(http, base, watch, seconds, audio=camera.audio, delete=delete)
    if output.kind == "webrtc":
        soak.webrtc_n += 1
    try:
        async with asyncio.timeout(seconds + 30):
            await run
    except Exception as exc:  # a viewer's failure is a figure, not the end of the soak
        watch.errors.append(f"{type(exc).__name__}: {exc}"[:100])
    finally:
        watch.end = loop.time()
    return watch


async def slot(soak: Soak, output: Output, variant: str, until: float) -> None:
    """Start viewers of ``output`` one after another until loop time ``until``."""
    loop = asyncio.get_running_loop()
    cameras = [c for c in CAMERAS if output.eligible(c)]
    await asyncio.sleep(soak.rng.uniform(0, 3))
    while (left := until - loop.time()) > 2:
        camera = soak.rng.choice(cameras)
        seconds = min(soak.rng.uniform(*soak.stay), left)
        watch = await watch_once(soak, output, camera, variant, seconds)
        soak.watches.append(watch)
        fps = "-" if watch.fps is None else f"{watch.fps:5.1f}"
        errors = f"  {watch.errors[:2]}" if watch.errors else ""
        took = watch.end - watch.start
        print(
            f"  {output.kind:8} {camera.name:7} {variant or '-':18} {took:5.1f} s "
            f"{watch.frames:5} frames {fps} fps{errors}",
            flush=True,
        )
        await asyncio.sleep(soak.rng.uniform(0.5, 3))


async def churn(soak: Soak, seconds: float, args: argparse.Namespace) -> None:
    """Run every output's slots and every camera's drops for ``seconds``."""
    until = asyncio.get_running_loop().time() + seconds
    tasks = []
    for output in OUTPUTS:
        if args.outputs and output.kind not in args.outputs.split(","):
            continue
        for n in range(output.slots):
            variant = output.variants[n % len(output.variants)]
            tasks.append(slot(soak, output, variant, until))
    for camera in CAMERAS:
        if camera.flap is not None and not args.no_drops:
            every = camera.flap[1] if args.quick else camera.flap[0]
            tasks.append(flap(soak.sims[camera.name], soak.rng, every, camera.flap[2], until))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        soak.http = http
        await asyncio.gather(*tasks)
    soak.http = None


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        return await response.json()


async def scrape(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """Return the ``/metrics`` samples by their text name (``name{labels}``)."""
    async with http.get(base + "/metrics") as response:
        text = await response.text()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def idle(api: dict[str, Any]) -> bool:
    """Return True if no one watches anything and every camera is live."""
    for camera in api["cameras"]:
        outputs = camera["outputs"]
        if camera["clients"] or outputs["webrtc"]["sessions"] or outputs["hls"]["state"] != "idle":
            return False
        if any(stream["state"] != "live" for stream in camera["streams"].values()):
            return False
        if {r["kind"] for r in camera["renditions"]} - {"pcm"}:
            return False
    return True


async def quiesce(soak: Soak, pid: int) -> dict[str, float]:
    """Wait until the gateway is idle; return its median RSS, descriptors, tasks, threads."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + QUIESCE_TIMEOUT_S
    while not idle(await get_json(soak.probe, soak.base + "/api/cameras")):
        if loop.time() > deadline:
            raise RuntimeError("the gateway did not become idle")
        await asyncio.sleep(0.5)
    waited = QUIESCE_TIMEOUT_S - (deadline - loop.time())
    await asyncio.sleep(3)
    samples = []
    for _ in range(3):
        rss, threads = status(pid)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        tasks = (await scrape(soak.probe, soak.base))["gateway_process_tasks"]
        samples.append((rss, fds, tasks, threads))
        await asyncio.sleep(1)
    rss, fds, tasks, threads = (statistics.median(column) for column in zip(*samples, strict=True))
    return {
        "rss_mb": round(rss, 2),
        "fds": fds,
        "tasks": tasks,
        "threads": threads,
        "thread_names": thread_names(pid),
        "idle_after_s": round(waited, 1),
    }


def thread_names(pid: int) -> dict[str, int]:
    """Return the process's threads counted by name (FFmpeg names its own, ``av:...``)."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    names = Counter((task / "comm").read_text().strip() for task in tasks)
    return dict(sorted(names.items()))


async def watch_peak(pid: int, figures: dict[str, float]) -> None:
    """Keep the gateway's peak RSS and threads in ``figures`` (sampled every second)."""
    while True:
        rss, threads = status(pid)
        figures["peak_rss_mb"] = max(figures.get("peak_rss_mb", 0.0), round(rss, 2))
        figures["peak_threads"] = max(figures.get("peak_threads", 0), threads)
        await asyncio.sleep(1)


def summarize(soak: Soak, rates: dict[str, float]) -> dict[str, Any]:
    """Return per output: viewers, failures, and frame rates (all, and steady vs expected).

    A viewer is steady if its camera did not drop while it watched; its ratio is its
    rate over the one it should get: the camera's (MPEG-2 and audio: as the gateway
    measured them upstream), 5 for ``fps=5``, 2 for snapshots.
    """
    out: dict[str, Any] = {}
    for output in OUTPUTS:
        watches = [w for w in soak.watches if w.kind == output.kind]
        fps = [w.fps for w in watches if w.fps is not None]
        steady = []
        for w in watches:
            if w.fps is None or soak.sims[w.camera].down_during(w.start, w.end):
                continue
            expected = rates.get(output.kind, FPS)
            if output.kind == "snapshot":
                expected = 1 / viewers.SNAPSHOT_INTERVAL
            elif w.variant == "fps=5":
                expected = 5
            steady.append(w.fps / expected)
        out[output.kind] = {
            "viewers": len(watches),
            "no_frames": sum(w.frames == 0 for w in watches),
            "with_errors": sum(bool(w.errors) for w in watches),
            "fps_min": round(min(fps), 2) if fps else None,
            "fps_median": round(statistics.median(fps), 2) if fps else None,
            "steady_viewers": len(steady),
            "steady_ratio_min": round(min(steady), 3) if steady else None,
            "steady_ratio_median": round(statistics.median(steady), 3) if steady else None,
        }
    return out


def gateway_config(port: int, sims: dict[str, Sim]) -> str:
    """Return the gateway's TOML: the three cameras on their simulators."""
    cameras = [
        CAMERA_TOML.format(
            name=plan.name, port=sims[plan.name].port, mpeg2=str(plan.mpeg2).lower(),
            audio=str(plan.audio).lower(), fps=FPS, size=SIZE,
        )
        for plan in CAMERAS
    ]  # fmt: skip
    return GATEWAY_TOML.format(port=port) + "".join(cameras)


async def soak_gateway(
    args: argparse.Namespace, soak: Soak, pid: int, figures: dict[str, Any]
) -> None:
    """Warm up, then churn in rounds; sample the idle gateway after each (``checkpoints``)."""
    total = args.seconds or (180.0 if args.quick else 1800.0)
    warmup = args.warmup or (60.0 if args.quick else 300.0)
    rounds = args.rounds or (2 if args.quick else 5)
    figures.update(warmup_s=warmup, measured_s=total - warmup, rounds=rounds)
    checkpoints = figures["checkpoints"] = []
    print(f"warm-up: {warmup:.0f} s of churn", flush=True)
    await churn(soak, warmup, args)
    checkpoints.append(await quiesce(soak, pid))
    print(f"after warm-up: {checkpoints[-1]}", flush=True)
    before = await scrape(soak.probe, soak.base)
    api = await get_json(soak.probe, soak.base + "/api/cameras/steady")
    rates = {kind: float(api["streams"][kind]["fps_in"]) for kind in ("mpeg2", "audio")}
    for n in range(rounds):
        print(f"round {n + 1}/{rounds}: {(total - warmup) / rounds:.0f} s of churn", flush=True)
        await churn(soak, (total - warmup) / rounds, args)
        checkpoints.append(await quiesce(soak, pid))
        print(f"checkpoint {n + 1}: {checkpoints[-1]}", flush=True)
    after = await scrape(soak.probe, soak.base)
    delivered = [(k, v) for k, v in after.items() if k.startswith("gateway_client_frames_")]
    figures["counters_monotonic"] = all(v >= before.get(k, 0.0) for k, v in delivered)
    reconnects = [v for k, v in after.items() if k.startswith("gateway_stream_reconnects_total")]
    figures["reconnects"] = sum(reconnects)
    figures["outputs"] = summarize(soak, rates)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the simulators, the gateway and the soak; return the figures."""
    sims = {plan.name: Sim(plan) for plan in CAMERAS}
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    port = free_port()
    (tmp / "gateway.toml").write_text(gateway_config(port, sims))
    log_path = tmp / "gateway.log"
    figures: dict[str, Any] = {"benchmark": "soak", "cameras": len(CAMERAS)}
    gateway: subprocess.Popen[bytes] | None = None
    started = time.monotonic()
    try:
        for sim in sims.values():
            sim.start()
        with log_path.open("wb") as log:
            gateway = spawn(
                [sys.executable, "-m", "gateway", "serve", "--config", str(tmp / "gateway.toml")],
                cwd=ROOT, stdout=log, stderr=log,
            )  # fmt: skip
        wait_port(port, gateway)
        stay = (5.0, 20.0) if args.quick else (10.0, 90.0)
        rng = random.Random(args.seed)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as probe:
            soak = Soak(f"http://127.0.0.1:{port}", probe, sims, rng, stay)
            peak = asyncio.create_task(watch_peak(gateway.pid, figures))
            try:
                await soak_gateway(args, soak, gateway.pid, figures)
            finally:
                peak.cancel()
    finally:
        if gateway is not None:
            stop(gateway)
        for sim in sims.values():
            if sim.proc is not None:
                stop(sim.proc)
    first, last = figures["checkpoints"][0], figures["checkpoints"][-1]
    drift = 100 * (last["rss_mb"] - first["rss_mb"]) / first["rss_mb"]
    text = log_path.read_bytes()
    figures.update(
        seconds=round(time.monotonic() - started, 1),
        rss_drift_percent=round(drift, 2),
        fd_growth=last["fds"] - first["fds"],
        task_growth=last["tasks"] - first["tasks"],
        thread_growth=last["threads"] - first["threads"],
        viewers=len(soak.watches),
        outages=sum(len(s.outages) for s in sims.values()),
        log_lines=len(text.splitlines()),
        log_tracebacks=text.count(b"Traceback"),
    )
    figures["budget_ok"] = (
        abs(drift) < BUDGET_RSS_PERCENT
        and figures["fd_growth"] <= 0
        and figures["task_growth"] <= 0
    )
    return figures


def main() -> None:
    """Parse the command line, run, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="3 minutes instead of 30")
    parser.add_argument("--seconds", type=float, help="the whole run (default 1800; quick 180)")
    parser.add_argument("--warmup", type=float, help="the warm-up (default 300; quick 60)")
    parser.add_argument("--rounds", type=int, help="checkpoints after the warm-up (5; quick 2)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--outputs", help="only these outputs (comma-separated), to isolate")
    parser.add_argument("--no-drops", action="store_true", help="cameras never drop")
    args = parser.parse_args()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # the WebRTC viewer is the tests' aiortc player
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
