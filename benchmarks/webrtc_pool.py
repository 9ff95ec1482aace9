"""The WebRTC benchmark's viewer processes (``webrtc_viewers.py``), and one measured step.

Each viewer is its own process, so that its CPU is not the server's; the first one of a
pool decodes (and reads the latency off the pictures), the others only count frames.
A step holds N viewers on a server, waits, and measures over a window: the server's CPU
(``/proc/<pid>/stat``, all its threads; its main thread apart), what each viewer
received, and the viewers' own CPU.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench_encode import loop_cpu_seconds
from bench_fanout import HERE, ROOT, _die_with_parent, cpu_seconds, status
from bench_hls import spread

#: Seconds a viewer may take from its start to its first complete video frame.
READY_TIMEOUT = 45.0
#: Viewer processes started at once (each imports aiortc: about a CPU-second).
START_CONCURRENCY = 4


class ViewerError(Exception):
    """A viewer process failed to play, or stopped answering."""


class Viewer:
    """One ``webrtc_viewers.py`` process, driven by JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process, *, decode: bool) -> None:
        self.proc = proc
        self.decode = decode
        #: Its ready line: answer_s, first_frame_s.
        self.ready: dict[str, Any] = {}

    @classmethod
    async def start(cls, url: str, *, decode: bool, audio: bool = True) -> Viewer:
        """Start a viewer of WHEP endpoint url; return once it plays (or raise ViewerError)."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the checkout's gateway package
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "webrtc_viewers.py"), url,
            *(["--decode"] if decode else []), *([] if audio else ["--video-only"]),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            preexec_fn=_die_with_parent, env=env, cwd=ROOT,
        )  # fmt: skip
        viewer = cls(proc, decode=decode)
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                viewer.ready = await viewer._line()
        except (TimeoutError, ViewerError) as exc:
            await viewer.close()
            raise ViewerError(f"no first frame: {exc!r}") from None
        if not viewer.ready.get("ready"):
            await viewer.close()
            raise ViewerError(viewer.ready.get("error", "not ready"))
        return viewer

    async def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise ViewerError(f"viewer exited with {await self.proc.wait()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def stats(self) -> dict[str, Any]:
        """Return the viewer's running totals."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b'{"cmd": "stats"}\n')
        await self.proc.stdin.drain()
        async with asyncio.timeout(10):
            return await self._line()

    async def close(self) -> None:
        """Have the viewer end its session and exit (kill it if it does not)."""
        if self.proc.returncode is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(b'{"cmd": "quit"}\n')
                await self.proc.stdin.drain()
                self.proc.stdin.close()
            except (ConnectionError, RuntimeError):
                pass
        try:
            async with asyncio.timeout(10):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class ViewerPool:
    """The viewers of one server; the first one decodes."""

    def __init__(self, url: str, *, audio: bool = True) -> None:
        self.url = url
        self.audio = audio
        self.viewers: list[Viewer] = []
        self.failures: list[str] = []

    async def grow_to(self, n: int) -> None:
        """Start viewers until n play (failures are kept in ``failures``)."""
        gate = asyncio.Semaphore(START_CONCURRENCY)

        async def one(decode: bool) -> None:
            async with gate:
                try:
                    viewer = await Viewer.start(self.url, decode=decode, audio=self.audio)
                    self.viewers.append(viewer)
                except ViewerError as exc:
                    self.failures.append(str(exc))

        if not self.viewers:
            await one(True)
            if not self.viewers:
                raise ViewerError(f"the first viewer failed: {self.failures[-1]}")
        await asyncio.gather(*(one(False) for _ in range(n - len(self.viewers))))

    async def shrink_to(self, n: int) -> None:
        """Close the newest viewers until n are left."""
        gone, self.viewers = self.viewers[n:], self.viewers[:n]
        await asyncio.gather(*(v.close() for v in gone))

    async def stats(self) -> list[dict[str, Any]]:
        """Return every viewer's running totals, in pool order."""
        return await asyncio.gather(*(v.stats() for v in self.viewers))

    async def close(self) -> None:
        await self.shrink_to(0)


async def measure_step(
    pool: ViewerPool, pid: int, window: float,
    sessions: Callable[[], Awaitable[int | None]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Measure the server (process pid) over window seconds with the pool's viewers on it."""
    before = await pool.stats()
    cpu0, loop0, t0 = cpu_seconds(pid), loop_cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(window)
    cpu1, loop1, t1 = cpu_seconds(pid), loop_cpu_seconds(pid), time.monotonic()
    after = await pool.stats()
    seconds = t1 - t0
    pairs = list(zip(before, after, strict=True))

    def rates(key: str, scale: float = 1.0) -> list[float]:
        return [scale * (b[key] - a[key]) / (b["time"] - a["time"]) for a, b in pairs]

    fps, audio, kbps = rates("frames"), rates("audio_frames"), rates("bytes", 8e-3)
    packets = rates("video_packets")
    first, last = before[0], after[0]  # the decoding viewer
    rss, threads = status(pid)
    row: dict[str, Any] = {
        "viewers": len(pool.viewers),
        "seconds": round(seconds, 2),
        "core_percent": round(100 * (cpu1 - cpu0) / seconds, 3),
        "loop_core_percent": round(100 * (loop1 - loop0) / seconds, 3),
        "fps_min": round(min(fps), 2),
        "fps_mean": round(statistics.fmean(fps), 2),
        "audio_packets_per_s_mean": round(statistics.fmean(audio), 1),
        "video_kbit_s_mean": round(statistics.fmean(kbps), 1),
        "video_packets_per_s_mean": round(statistics.fmean(packets), 1),
        "video_packets_lost": sum(b["video_lost"] - a["video_lost"] for a, b in pairs),
        "not_connected": sum(b["state"] != "connected" for b in after),
        "viewers_core_percent": round(
            100 * sum(b["cpu"] - a["cpu"] for a, b in pairs) / seconds, 1
        ),
        "decoded_fps": round((last["decoded"] - first["decoded"]) / seconds, 2),
        "decode_errors": last["decode_errors"],
        "unreadable": last["unreadable"] - first["unreadable"],
        **spread(last["latency_ms"], "glass_to_aiortc_ms"),
        "rss_mb": round(rss, 1),
        "threads": threads,
    }
    if sessions is not None:
        row["server_sessions"] = await sessions()
    return row


def describe(row: dict[str, Any]) -> str:
    """Return one line for a step."""
    return (
        f"  {row['viewers']:>2} viewers: {row['core_percent']:6.2f}% of a core "
        f"(loop {row['loop_core_percent']:5.2f}%), fps per viewer min {row['fps_min']:.1f} "
        f"mean {row['fps_mean']:.1f}, audio {row['audio_packets_per_s_mean']:.0f} pkt/s, "
        f"{row['video_kbit_s_mean']:.0f} kbit/s, decoding viewer {row['decoded_fps']:.1f} fps "
        f"({row['decode_errors']} errors, glass-to-aiortc "
        f"{row.get('glass_to_aiortc_ms_median')} ms), viewers' CPU "
        f"{row['viewers_core_percent']:.0f}%"
    )


def slope(rows: list[dict[str, Any]]) -> float | None:
    """Return the least-squares CPU (% of a core) per added viewer over the steps."""
    if len(rows) < 2:
        return None
    xs = [float(r["viewers"]) for r in rows]
    ys = [float(r["core_percent"]) for r in rows]
    return round(statistics.linear_regression(xs, ys).slope, 4)
