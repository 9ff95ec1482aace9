"""Shared H.264 encode: the gateway's CPU per camera against a bare PyAV loop and the ffmpeg CLI.

For each source size (640x480 and 1280x720 by default) one simulator (``gateway sim
--fps 25 --size WxH``) and one ``gateway serve`` with one camera on it (MJPEG only, the
default ``[cameras.h264]``), each its own process. Viewers of ``/mp4/bench`` read
through the load generator (``loadgen.py``, another process: it only counts bytes and
``moof`` boxes, one per picture). In the same run, over windows of the same length:

- **idle**: the gateway with no viewer (the MJPEG ingest alone); meanwhile this process
  records the simulator's JPEGs (the very bytes the gateway gets) for the floor;
- **gateway, 1 viewer** and **gateway, N viewers** (default 20, one of them the latency
  viewer below): the gateway's CPU time (all threads; its event-loop thread apart:
  ingest, muxing and sockets, the encode runs in a worker thread), the pictures it
  encoded (``/api/cameras``) and what every viewer received;
- **floor**: a bare PyAV loop in this process on the recorded JPEGs, paced at 25 fps (and
  once unpaced): mjpeg decode, one swscale pass to limited-range yuv420p, libx264 opened
  with the gateway's own options (``open_encoder``: veryfast, zerolatency, Constrained
  Baseline, no B-frames, crf 23, one thread) and an IDR every 25 pictures;
- **ffmpeg CLI**: ``ffmpeg -f mjpeg -i http://<sim>/axis-cgi/mjpg/video.cgi`` to
  fragmented MP4 on a pipe with the same x264 settings, as go2rtc runs it (default
  threads; the full run also ``-threads 1``): its CPU time and pictures (``-progress``).

Beside CPU, each system's context switches per picture (``/proc/<pid>/task/*/status``):
a thread that sleeps between pictures pays a wakeup for each, which on a VM costs tens of
microseconds of CPU and colder caches (the paced floor against the unpaced one shows it).

The windows are split into rounds (two in the full run) that take turns, so a burst of
load from other jobs on a shared machine hits every system alike. Budgets (DESIGN §8):
gateway (1 viewer) / floor <= 1.15 and / ffmpeg CLI <= 1.0 in CPU per picture, ingest
included; (gateway (N) - gateway (1)) / (N - 1) <= 0.2% of a core per added viewer.

**Latency**: during the N-viewer windows one viewer is PyAV in this process, decoding
``/mp4/bench`` and reading each picture's block code (``read_block_code``: the capture
time the simulator painted, unix ns from ``time.time_ns()`` taken before its JPEG
encode); glass-to-picture = wall clock when the picture leaves the decoder - capture.

    python benchmarks/bench_encode.py [--quick] [--size WxH]... [--window S] [--viewers N]

Needs the ffmpeg CLI (``apt-get install ffmpeg``). The last line of stdout is one JSON
object with the figures per size.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import ColorRange, VideoReformatter
from bench_fanout import LoadGen, cpu_seconds, first_client, simulator, spawn, stop
from bench_fanout import gateway as fanout_gateway

from gateway.sim.pattern import read_block_code
from gateway.transcode.h264 import CONVERT
from gateway.transcode.h264_encoder import open_encoder
from gateway.transcode.h264_params import DEFAULT_CRF, LIBX264, H264Settings

FPS = 25
TICKS = 90_000 // FPS
CAMERA = "bench"
MP4_PATH = f"/mp4/{CAMERA}"
#: What the gateway's ingest asks the simulator for; the capture and ffmpeg ask the same
#: (one shared encode per channel and size in the simulator: the same bytes for all).
MJPEG_PATH = "/axis-cgi/mjpg/video.cgi?fps=25"
#: DESIGN §8.
BUDGET_FLOOR = 1.15
BUDGET_FFMPEG = 1.0
BUDGET_VIEWER_PERCENT = 0.2

GATEWAY_TOML = """\
[server]
listen = "127.0.0.1:{port}"

[[cameras]]
name = "bench"
source = "http://127.0.0.1:{sim_port}"
mjpeg = true
mpeg2 = false
audio = false
fps = 25
"""


def r3(value: float) -> float:
    """Round to three decimals (the JSON figures)."""
    return round(value, 3)


def loop_cpu_seconds(pid: int) -> float:
    """Return the CPU time of ``pid``'s main thread (the gateway's event loop), ns-exact."""
    return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[0]) / 1e9


def switches(pid: int, tid: int | None = None) -> int:
    """Return the context switches of thread ``tid`` of ``pid`` (None: of all its threads).

    Voluntary ones are the thread's sleeps, so each is a wakeup later: on a VM a wakeup
    costs tens of microseconds of CPU, which per-picture work at 25 fps has to pay.
    """
    tasks = [tid] if tid is not None else [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
    total = 0
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/status").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        for line in text.splitlines():
            # voluntary_ctxt_switches and nonvoluntary_ctxt_switches
            if line.split(":")[0].endswith("ctxt_switches"):
                total += int(line.split()[1])
    return total


def h264_stats(port: int) -> dict[str, Any]:
    """Return the camera's H.264 rendition entry from ``/api/cameras``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras", timeout=5) as answer:
        cameras = json.load(answer)
    for rendition in cameras["cameras"][0]["renditions"]:
        if rendition["kind"] == "h264":
            found: dict[str, Any] = rendition
            return found
    raise RuntimeError("the camera has no h264 rendition")


def record_jpegs(port: int, count: int) -> list[bytes]:
    """Return the next ``count`` JPEGs of the simulator's MJPEG stream."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", MJPEG_PATH)
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"simulator answered {response.status}")
        jpegs: list[bytes] = []
        length = None
        while len(jpegs) < count:
            line = response.readline()
            if not line:
                raise RuntimeError("simulator closed the stream")
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            elif not line.strip() and length is not None:
                jpegs.append(response.read(length))
                length = None
        return jpegs
    finally:
        conn.close()


@dataclass
class Tally:
    """One system's totals over every round."""

    seconds: float = 0.0
    cpu_s: float = 0.0
    #: The gateway's event-loop thread (ingest, muxing, sockets).
    loop_cpu_s: float = 0.0
    #: Pictures encoded.
    frames: int = 0
    #: Pictures the encoder skipped (latest-wins: it fell behind).
    skipped: int = 0
    #: Context switches (all threads; the loop thread's apart).
    switches: int = 0
    loop_switches: int = 0
    #: Pictures per second of the slowest viewer in any round.
    min_viewer_fps: float = float("inf")
    #: Milliseconds of CPU per picture in each window.
    rounds: list[float] = field(default_factory=list)

    def add(self, row: Mapping[str, float]) -> None:
        """Add one window's ``seconds``, ``cpu_s``, ``frames`` (and the gateway's extras)."""
        self.seconds += row["seconds"]
        self.cpu_s += row["cpu_s"]
        self.frames += int(row["frames"])
        self.loop_cpu_s += row.get("loop_cpu_s", 0.0)
        self.skipped += int(row.get("skipped", 0))
        self.switches += int(row.get("switches", 0))
        self.loop_switches += int(row.get("loop_switches", 0))
        if row["frames"]:
            self.rounds.append(1e3 * row["cpu_s"] / row["frames"])
        self.min_viewer_fps = min(self.min_viewer_fps, row.get("min_viewer_fps", float("inf")))

    @property
    def core_percent(self) -> float:
        return 100 * self.cpu_s / self.seconds

    @property
    def loop_core_percent(self) -> float:
        return 100 * self.loop_cpu_s / self.seconds

    @property
    def ms_per_frame(self) -> float:
        return 1e3 * self.cpu_s / self.frames

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


@dataclass
class Picture:
    """One picture the latency viewer decoded."""

    #: Monotonic seconds when it left the decoder.
    at: float
    #: Received (its packet demuxed) and decoded, unix ns.
    received_ns: int
    decoded_ns: int
    #: Capture time from the block code, unix ns (None: no readable code).
    captured_ns: int | None


@dataclass
class LatencyViewer:
    """A ``/mp4`` viewer in a thread of this process: PyAV decodes, the block code is read."""

    url: str
    pictures: list[Picture] = field(default_factory=list)
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="latency viewer", daemon=True)
        self._thread.start()

    def wait_first(self, timeout: float = 20.0) -> None:
        """Wait until the first picture is decoded."""
        deadline = time.monotonic() + timeout
        while not self.pictures:
            if self.error is not None or time.monotonic() > deadline:
                raise RuntimeError(f"latency viewer got no picture: {self.error!r}")
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
            with av.open(self.url, timeout=10) as container:
                stream = container.streams.video[0]
                stream.codec_context.thread_count = 1  # frame threads would hold pictures
                for packet in container.demux(stream):
                    received = time.time_ns()
                    for picture in packet.decode():
                        decoded = time.time_ns()
                        plane = picture.planes[0]
                        luma = np.frombuffer(memoryview(plane), np.uint8).reshape(
                            -1, plane.line_size
                        )
                        code = read_block_code(luma[: picture.height, : picture.width])
                        captured = None if code is None else code[1]
                        self.pictures.append(Picture(time.monotonic(), received, decoded, captured))
                    if self._stop.is_set():
                        return
        except Exception as exc:  # reported with the figures
            self.error = exc


def measure_gateway(
    pid: int, port: int, gens: list[LoadGen], window: float, latency: LatencyViewer | None
) -> dict[str, float]:
    """Measure the gateway over ``window`` seconds with the viewers open now."""
    before = [gen.call(cmd="stats") for gen in gens]
    api0, cpu0, loop0 = h264_stats(port), cpu_seconds(pid), loop_cpu_seconds(pid)
    switches0, loop_switches0 = switches(pid), switches(pid, pid)
    t0 = time.monotonic()
    time.sleep(window)
    after = [gen.call(cmd="stats") for gen in gens]
    api1, cpu1, loop1 = h264_stats(port), cpu_seconds(pid), loop_cpu_seconds(pid)
    switches1, loop_switches1 = switches(pid), switches(pid, pid)
    t1 = time.monotonic()
    seconds = t1 - t0
    counts = [
        b - a
        for x, y in zip(before, after, strict=True)
        for a, b in zip(x["per_client"], y["per_client"], strict=True)
    ]
    if latency is not None:
        counts.append(sum(t0 <= p.at <= t1 for p in latency.pictures))
    return {
        "seconds": seconds,
        "cpu_s": cpu1 - cpu0,
        "loop_cpu_s": loop1 - loop0,
        "switches": switches1 - switches0,
        "loop_switches": loop_switches1 - loop_switches0,
        "frames": api1["pipeline_frames_in"] - api0["pipeline_frames_in"],
        "skipped": api1["skipped"] - api0["skipped"],
        "min_viewer_fps": min(counts) / seconds,
        "viewers": len(counts),
    }


def encode_floor(jpegs: list[bytes], size: tuple[int, int], *, paced: bool) -> dict[str, float]:
    """Run the bare decode -> convert -> encode loop over ``jpegs``; return its CPU."""
    decoder = av.CodecContext.create("mjpeg", "r")
    decoder.thread_count = 1
    encoder = open_encoder(LIBX264, H264Settings(), size, FPS, threads=1)
    reformatter = VideoReformatter()
    out = 0
    switches0 = switches(os.getpid())
    cpu0, t0 = time.process_time(), time.monotonic()
    for index, data in enumerate(jpegs):
        if paced and (ahead := t0 + index / FPS - time.monotonic()) > 0:
            time.sleep(ahead)
        for picture in decoder.decode(av.Packet(data)):
            frame = reformatter.reformat(
                picture,
                format="yuv420p",
                src_color_range=ColorRange.JPEG,
                dst_color_range=ColorRange.MPEG,
                interpolation=CONVERT,
                threads=1,
            )
            frame.pts = index * TICKS
            frame.pict_type = PictureType.I if index % FPS == 0 else PictureType.NONE
            out += sum(len(bytes(packet)) for packet in encoder.encode(frame))
    cpu, seconds = time.process_time() - cpu0, time.monotonic() - t0
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "frames": len(jpegs),
        "switches": switches(os.getpid()) - switches0,
        "bytes": out,
    }


def ffmpeg_args(sim_port: int, progress: Path, threads: int | None) -> list[str]:
    """Return the ffmpeg command line: the simulator's MJPEG to fMP4 on stdout."""
    pin = ["-threads", str(threads)] if threads else []
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
        "-progress", str(progress), "-stats_period", "0.1",
        *pin, "-f", "mjpeg", "-i", f"http://127.0.0.1:{sim_port}{MJPEG_PATH}", "-an",
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
        "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-crf", str(DEFAULT_CRF),
        "-x264-params", f"keyint={FPS}:min-keyint={FPS}:scenecut=0:repeat-headers=1", *pin,
        "-f", "mp4", "-movflags", "frag_keyframe+empty_moov", "pipe:1",
    ]  # fmt: skip


def progress_frames(path: Path) -> int:
    """Return the newest ``frame=`` count ffmpeg wrote to its ``-progress`` file."""
    found = re.findall(r"^frame=(\d+)$", path.read_text() if path.exists() else "", re.M)
    return int(found[-1]) if found else 0


def measure_ffmpeg(
    sim_port: int, tmp: Path, threads: int | None, window: float, warmup: float
) -> dict[str, float]:
    """Run the ffmpeg CLI transcode; measure its CPU and pictures over ``window``."""
    progress = tmp / f"ffmpeg-{threads}.progress"
    progress.unlink(missing_ok=True)
    log = (tmp / f"ffmpeg-{threads}.log").open("wb")
    proc = spawn(ffmpeg_args(sim_port, progress, threads), stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while progress_frames(progress) == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ffmpeg made no picture (see {log.name})")
            time.sleep(0.1)
        time.sleep(warmup)
        frames0, cpu0, t0 = progress_frames(progress), cpu_seconds(proc.pid), time.monotonic()
        switches0 = switches(proc.pid)
        time.sleep(window)
        frames1, cpu1, t1 = progress_frames(progress), cpu_seconds(proc.pid), time.monotonic()
        switches1 = switches(proc.pid)
    finally:
        stop(proc)
        log.close()
    # -progress is written every 0.1 s: frames are counted to within about 3.
    return {
        "seconds": t1 - t0,
        "cpu_s": cpu1 - cpu0,
        "frames": frames1 - frames0,
        "switches": switches1 - switches0,
    }


@contextmanager
def encode_gateway(sim_port: int, tmp: Path) -> Iterator[tuple[int, int]]:
    """Run ``gateway serve`` with one MJPEG camera on the simulator; yield (pid, port)."""
    with fanout_gateway(sim_port, tmp, GATEWAY_TOML) as (proc, port):
        yield proc.pid, port


def measure_size(
    size: tuple[int, int], args: argparse.Namespace, gens: tuple[LoadGen, LoadGen]
) -> dict[str, Any]:
    """Measure every system for one source size; return its figures."""
    window, rounds, warmup = args.window, args.rounds, args.warmup
    part = window / rounds
    one, more = gens
    ffmpegs: list[int | None] = [None] if args.quick else [None, 1]
    tally = {name: Tally() for name in ("gateway_1", "gateway_n", "floor", "floor_unpaced")}
    tally |= {f"ffmpeg_t{t or 'auto'}": Tally() for t in ffmpegs}
    latency: list[Picture] = []
    errors: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-encode-") as tmpdir,
        simulator(f"{size[0]}x{size[1]}") as (_, sim_port),
        encode_gateway(sim_port, Path(tmpdir)) as (pid, port),
    ):
        tmp = Path(tmpdir)
        time.sleep(1.0)  # the ingest connects
        cpu0, loop0, t0 = cpu_seconds(pid), loop_cpu_seconds(pid), time.monotonic()
        switches0, loop_switches0 = switches(pid), switches(pid, pid)
        jpegs = record_jpegs(sim_port, round(window * FPS))
        idle = Tally()
        # The gateway ingests the same pictures meanwhile: "frames" are those.
        idle.add({
            "seconds": time.monotonic() - t0,
            "cpu_s": cpu_seconds(pid) - cpu0,
            "loop_cpu_s": loop_cpu_seconds(pid) - loop0,
            "frames": len(jpegs),
            "switches": switches(pid) - switches0,
            "loop_switches": switches(pid, pid) - loop_switches0,
        })  # fmt: skip
        print(
            f"{size[0]}x{size[1]}: idle ingest {idle.core_percent:.2f}% of a core; "
            f"{len(jpegs)} JPEGs of {statistics.fmean(map(len, jpegs)) / 1e3:.1f} kB recorded"
        )
        for index in range(rounds):
            first_client(one, port, MP4_PATH)
            time.sleep(warmup)
            tally["gateway_1"].add(measure_gateway(pid, port, [one], part, None))
            viewer = LatencyViewer(f"http://127.0.0.1:{port}{MP4_PATH}")
            viewer.start()
            reply = more.call(cmd="open", port=port, path=MP4_PATH, n=args.viewers - 2)
            if reply["failed"]:
                errors.append(f"{reply['failed']} viewers failed: {reply['errors']}")
            viewer.wait_first()
            time.sleep(warmup)
            tally["gateway_n"].add(measure_gateway(pid, port, [one, more], part, viewer))
            viewer.close()
            if viewer.error is not None:
                errors.append(f"latency viewer: {viewer.error!r}")
            latency += [p for p in viewer.pictures if p.at >= viewer.pictures[0].at + warmup]
            more.call(cmd="close")
            one.call(cmd="close")
            chunk = jpegs[index * len(jpegs) // rounds : (index + 1) * len(jpegs) // rounds]
            tally["floor"].add(encode_floor(chunk, size, paced=True))
            if index == 0:
                tally["floor_unpaced"].add(encode_floor(jpegs, size, paced=False))
            for threads in ffmpegs:
                name = f"ffmpeg_t{threads or 'auto'}"
                tally[name].add(measure_ffmpeg(sim_port, tmp, threads, part, warmup))
            print(f"  round {index + 1}/{rounds}, ms CPU per picture: " + ", ".join(
                f"{name} {t.rounds[-1]:.2f}" for name, t in tally.items()
            ))  # fmt: skip
    return summarize(size, idle, tally, latency, args.viewers, errors)


def summarize(
    size: tuple[int, int], idle: Tally, tally: dict[str, Tally], latency: list[Picture],
    viewers: int, errors: list[str],
) -> dict[str, Any]:  # fmt: skip
    """Print one size's table; return its figures."""
    one, many, floor, ffmpeg = (
        tally["gateway_1"], tally["gateway_n"], tally["floor"], tally["ffmpeg_tauto"]
    )  # fmt: skip
    figures: dict[str, Any] = {}
    print(f"  {'system':<16} {'ms CPU/picture':>14} {'% core':>7} {'pictures/s':>10} "
          f"{'switches/picture':>16} {'loop % core':>11} {'loop switches':>13} "
          f"{'min viewer fps':>14}")  # fmt: skip
    for name, t in {"idle": idle, **tally}.items():
        if not t.frames:
            continue
        # The floor's own rate is set by its pacing: % of a core is per 25 fps of video.
        core = t.ms_per_frame * 2.5 if name.startswith("floor") else t.core_percent
        figures[f"{name}_ms_per_frame"] = r3(t.ms_per_frame)
        if len(t.rounds) > 1:
            figures[f"{name}_ms_per_frame_rounds"] = [r3(ms) for ms in t.rounds]
        figures[f"{name}_core_percent"] = r3(core)
        figures[f"{name}_fps"] = round(t.fps, 2)
        figures[f"{name}_switches_per_frame"] = round(t.switches / t.frames, 2)
        line = (
            f"  {name:<16} {t.ms_per_frame:>14.3f} {core:>7.2f} {t.fps:>10.2f} "
            f"{t.switches / t.frames:>16.2f}"
        )
        if name.startswith(("gateway", "idle")):
            figures[f"{name}_loop_core_percent"] = r3(t.loop_core_percent)
            figures[f"{name}_loop_switches_per_frame"] = round(t.loop_switches / t.frames, 2)
            line += f" {t.loop_core_percent:>11.2f} {t.loop_switches / t.frames:>13.2f}"
        if name.startswith("gateway"):
            # Everything off the loop thread: the encode worker, in effect.
            figures[f"{name}_other_threads_core_percent"] = r3(t.core_percent - t.loop_core_percent)
            figures[f"{name}_min_viewer_fps"] = round(t.min_viewer_fps, 2)
            figures[f"{name}_skipped"] = t.skipped
            line += f" {t.min_viewer_fps:>14.2f}"
        print(line)
    per_viewer = (many.core_percent - one.core_percent) / (viewers - 1)
    per_viewer_loop = (many.loop_core_percent - one.loop_core_percent) / (viewers - 1)
    figures |= {
        "ratio_floor": r3(one.ms_per_frame / floor.ms_per_frame),
        "ratio_floor_net_of_idle": r3((one.ms_per_frame - idle.ms_per_frame) / floor.ms_per_frame),
        "ratio_ffmpeg": r3(one.ms_per_frame / ffmpeg.ms_per_frame),
        "per_viewer_core_percent": r3(per_viewer),
        "per_viewer_loop_core_percent": r3(per_viewer_loop),
    }
    if "ffmpeg_t1" in tally:
        figures["ratio_ffmpeg_t1"] = r3(one.ms_per_frame / tally["ffmpeg_t1"].ms_per_frame)
    decoded = [(p.decoded_ns - p.captured_ns) / 1e6 for p in latency if p.captured_ns]
    received = [(p.received_ns - p.captured_ns) / 1e6 for p in latency if p.captured_ns]
    if decoded:
        figures |= {
            "latency_ms_median": round(statistics.median(decoded), 1),
            "latency_ms_p95": round(float(np.percentile(decoded, 95)), 1),
            "latency_received_ms_median": round(statistics.median(received), 1),
            "latency_pictures": len(latency),
            "latency_unreadable": len(latency) - len(decoded),
        }
    figures |= {
        "budget_floor_met": figures["ratio_floor"] <= BUDGET_FLOOR,
        "budget_ffmpeg_met": figures["ratio_ffmpeg"] <= BUDGET_FFMPEG,
        "budget_viewer_met": per_viewer <= BUDGET_VIEWER_PERCENT,
    }
    if errors:
        figures["errors"] = errors
    print(
        f"  gateway/floor {figures['ratio_floor']:.2f}x (budget {BUDGET_FLOOR}), "
        f"gateway/ffmpeg {figures['ratio_ffmpeg']:.2f}x (budget {BUDGET_FFMPEG}), "
        f"per added viewer {per_viewer:.3f}% of a core (loop thread {per_viewer_loop:.3f}%; "
        f"budget {BUDGET_VIEWER_PERCENT}), glass-to-picture median "
        f"{figures.get('latency_ms_median')} ms, p95 {figures.get('latency_ms_p95')} ms"
    )
    for error in errors:
        print(f"  ! {error}")
    return figures


def main() -> None:
    """Parse arguments, run every size, print the tables and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="8 s windows, one round")
    parser.add_argument("--size", action="append", help="WxH (default 640x480 and 1280x720)")
    parser.add_argument("--window", type=float, help="seconds measured per system (20; 8)")
    parser.add_argument("--viewers", type=int, default=20, help="the many-viewer count")
    args = parser.parse_args()
    args.window = args.window or (8.0 if args.quick else 20.0)
    args.rounds = 1 if args.quick else 2
    args.warmup = 2.0
    if shutil.which("ffmpeg") is None:
        raise SystemExit("needs the ffmpeg CLI: apt-get install -y ffmpeg")
    sizes = [s.split("x") for s in args.size or ["640x480", "1280x720"]]
    result: dict[str, Any] = {
        "benchmark": "encode",
        "window_s": args.window,
        "rounds": args.rounds,
        "viewers": args.viewers,
    }
    gens = (LoadGen(), LoadGen())
    try:
        for width, height in sizes:
            result[f"{width}x{height}"] = measure_size((int(width), int(height)), args, gens)
    finally:
        for gen in gens:
            gen.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
