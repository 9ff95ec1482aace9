"""MJPEG fan-out: delivered frames and egress bytes per CPU-second, vs motion and iperf3.

One 25 fps 640x480 MJPEG source (the gateway's simulator, its own process) and N clients
(1, 10, 100, 500, 1000; ``--quick``: 1, 10, 100) reading MJPEG through a load generator in
another process (``loadgen.py``: raw sockets on uvloop that only count bytes and parts). In
the same run, one system at a time:

- **gateway**: ``gateway serve`` (its own process) with one camera whose source is the
  simulator, clients on ``/axis-cgi/mjpg/video.cgi`` (pass-through: no image parameters);
  ``--target sim`` puts the simulator's own MJPEG endpoint in its place (it also encodes
  each frame once and shares it, but copies it per client and its CPU includes the encoder);
- **motion** (Debian package) as a netcam re-streamer of the same source: it decodes every
  frame, runs its motion detection (no pictures or movies written), re-encodes once per
  frame at its default ``stream_quality`` 50 and streams at ``stream_maxrate`` 25;
- **writev floor** (``writev_floor.py``): a server that does nothing per client but the
  one ``os.writev`` of each part (same three chunks, same shared payload, the gateway's
  average frame size): what the kernel alone charges a sender per client frame, the floor
  for any server that writes each client's bytes;
- **iperf3** on loopback, one TCP stream: bytes per CPU-second of server plus client, the
  physical limit for moving bytes (also reported for the sending side alone).

For each N, after a warm-up, over a fixed window: the system's CPU-seconds (utime + stime
deltas from /proc/<pid>/stat, all threads), frames and bytes the clients received, the
system's peak RSS (VmRSS). Ratios: gateway frames per CPU-s / motion's (DESIGN §8: >= 10x),
gateway egress bytes per CPU-s / iperf3's (>= 50%), RSS at 1000 clients (<= 150 MB); and
the gateway's and motion's frames per CPU-s / the writev floor's.

    python benchmarks/bench_fanout.py [--quick] [--target gateway|sim] [--plot PATH]

The last line of stdout is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TICK = os.sysconf("SC_CLK_TCK")
MJPEG_PATH = "/axis-cgi/mjpg/video.cgi"
LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL if the benchmark dies (no stray servers)."""
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``args`` as a child that cannot outlive this process."""
    return subprocess.Popen(args, preexec_fn=_die_with_parent, **kwargs)  # noqa: PLW1509


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate ``proc`` (then kill it after 5 s) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """Return utime + stime of process ``pid`` (all its threads) in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of proc(5)


def status(pid: int) -> tuple[float, int]:
    """Return the resident set size of ``pid`` in MB (10^6 bytes) and its thread count."""
    rss, threads = 0.0, 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024 / 1e6
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, threads


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Wait until something accepts on ``port`` (or ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.1)
        else:
            return
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


class LoadGen:
    """The load generator process (``script`` in this directory), driven by JSON lines."""

    def __init__(self, script: str = "loadgen.py") -> None:
        self.proc = spawn(
            [sys.executable, str(HERE / script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def call(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("load generator exited")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        try:
            self.call(cmd="quit")
        except (OSError, RuntimeError, ValueError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def first_client(gen: LoadGen, port: int, path: str, timeout: float = 30.0) -> None:
    """Open one client, retrying until the system serves a part (it may still be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = gen.call(cmd="open", port=port, path=path, n=1)
        if reply["ok"] == 1:
            return
        gen.call(cmd="close")
        if time.monotonic() > deadline:
            hint = " (no MJPEG endpoint in this build? --target sim)" if "404" in str(reply) else ""
            raise RuntimeError(f"no MJPEG from port {port}{path}: {reply['errors']}{hint}")
        time.sleep(0.5)


def measure(
    gen: LoadGen, pid: int, port: int, path: str, counts: list[int], window: float, warmup: float,
    source_pid: int | None = None,
) -> list[dict[str, float]]:  # fmt: skip
    """Grow the client set through ``counts``; measure each step over ``window`` seconds."""
    rows = []
    first_client(gen, port, path)
    have = 1
    for n in counts:
        if n > have:
            reply = gen.call(cmd="open", port=port, path=path, n=n - have)
            if reply["failed"]:
                print(f"  {reply['failed']} of {n - have} clients failed: {reply['errors']}")
            have = n
        time.sleep(warmup)
        before, cpu0 = gen.call(cmd="stats"), cpu_seconds(pid)
        src0 = cpu_seconds(source_pid) if source_pid else 0.0
        peak, threads = status(pid)
        end = time.monotonic() + window
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(0.5, left))
            rss, now_threads = status(pid)
            peak, threads = max(peak, rss), max(threads, now_threads)
        after, cpu1 = gen.call(cmd="stats"), cpu_seconds(pid)
        src1 = cpu_seconds(source_pid) if source_pid else 0.0
        seconds = after["time"] - before["time"]
        frames, nbytes, cpu = (
            after["parts"] - before["parts"],
            after["bytes"] - before["bytes"],
            cpu1 - cpu0,
        )
        # Per-client rate over the window: clients are the same objects in both snapshots.
        per = [b - a for a, b in zip(before["per_client"], after["per_client"], strict=False)]
        row = {
            "clients": n,
            "alive": after["alive"],
            "seconds": seconds,
            "cpu_s": cpu,
            "core_percent": 100 * cpu / seconds,
            "frames": frames,
            "bytes": nbytes,
            "fps_per_client": frames / max(after["alive"], 1) / seconds,
            "min_client_fps": min(per, default=0) / seconds,
            "median_client_fps": statistics.median(per or [0]) / seconds,
            "frames_per_cpu_s": frames / cpu if cpu else float("inf"),
            "us_cpu_per_frame": cpu / frames * 1e6 if frames else float("inf"),
            "mb_per_cpu_s": nbytes / cpu / 1e6 if cpu else float("inf"),
            "frame_kb": nbytes / frames / 1e3 if frames else 0.0,
            "rss_mb": peak,
            "threads": threads,
            "loadgen_core_percent": 100 * (after["cpu"] - before["cpu"]) / seconds,
            "source_core_percent": 100 * (src1 - src0) / seconds,
        }
        rows.append(row)
        print(
            f"  N={n:>5} alive={row['alive']:>5} {row['fps_per_client']:5.1f} fps/client "
            f"(min {row['min_client_fps']:4.1f}) cpu {row['core_percent']:5.1f}% "
            f"{row['frames_per_cpu_s']:8.0f} frames/cpu-s {row['mb_per_cpu_s']:7.0f} MB/cpu-s "
            f"{row['frame_kb']:5.1f} kB/frame rss {row['rss_mb']:6.1f} MB "
            f"threads {threads:>4} "
            f"loadgen {row['loadgen_core_percent']:4.0f}% "
            f"source {row['source_core_percent']:4.0f}%",
            flush=True,
        )
    gen.call(cmd="close")
    return rows


@contextmanager
def simulator(size: str = "640x480") -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Run ``gateway sim`` (25 fps, ``size`` pictures) on a free loopback port."""
    port = free_port()
    proc = spawn(
        [sys.executable, "-m", "gateway", "--log-level", "warning", "sim",
         "--listen", f"127.0.0.1:{port}", "--fps", "25", "--size", size],
        cwd=ROOT,
    )  # fmt: skip
    try:
        wait_port(port, proc)
        yield proc, port
    finally:
        stop(proc)


GATEWAY_TOML = """\
[server]
listen = "127.0.0.1:{port}"
# Every load-generator client comes from 127.0.0.1 (the default per address is 500).
max_connections = 5000
max_connections_per_address = 5000

[limits]
max_clients_per_camera = 5000

[[cameras]]
name = "bench"
source = "http://127.0.0.1:{sim_port}"
mjpeg = true
mpeg2 = false
audio = false
fps = 25
"""


@contextmanager
def gateway(
    sim_port: int, tmp: Path, toml: str = GATEWAY_TOML, **values: object
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Run ``gateway serve`` with ``toml`` (one camera fed by the simulator) on a free port.

    ``toml`` is formatted with ``port``, ``sim_port`` and ``values``.
    """
    port = free_port()
    stem = "gateway-" + "-".join(str(v) for v in values.values()) if values else "gateway"
    config = tmp / f"{stem}.toml"
    config.write_text(toml.format(port=port, sim_port=sim_port, **values))
    log = (tmp / f"{stem}.log").open("wb")
    proc = spawn(
        [sys.executable, "-m", "gateway", "--log-level", "warning",
         "serve", "--config", str(config)],
        cwd=ROOT, stderr=log,
    )  # fmt: skip
    try:
        wait_port(port, proc)
        yield proc, port
    finally:
        stop(proc)
        log.close()


MOTION_CONF = """\
daemon off
setup_mode off
log_level 5
log_file {tmp}/motion.log
target_dir {tmp}/motion-out
netcam_url http://127.0.0.1:{sim_port}{path}
width 640
height 480
framerate 25
picture_output off
movie_output off
snapshot_interval 0
webcontrol_port 0
stream_port {port}
stream_localhost on
stream_maxrate 25
stream_motion off
"""


@contextmanager
def motion(sim_port: int, tmp: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Run motion as a netcam re-streamer of the simulator's MJPEG."""
    port = free_port()
    config = tmp / "motion.conf"
    config.write_text(MOTION_CONF.format(tmp=tmp, sim_port=sim_port, path=MJPEG_PATH, port=port))
    out = (tmp / "motion.out").open("wb")
    proc = spawn(["motion", "-n", "-c", str(config)], cwd=tmp, stdout=out, stderr=out)
    try:
        wait_port(port, proc)
        yield proc, port
    finally:
        stop(proc)
        out.close()


@contextmanager
def writev_floor(size: int) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Run the writev floor server with ``size``-byte parts on a free loopback port."""
    port = free_port()
    proc = spawn(
        [sys.executable, str(HERE / "writev_floor.py"), "--port", str(port), "--size", str(size)]
    )
    try:
        wait_port(port, proc)
        yield proc, port
    finally:
        stop(proc)


def iperf3(seconds: float) -> dict[str, float]:
    """Run iperf3 server and client on loopback; return bytes per CPU-second."""
    port = free_port()
    server = spawn(
        ["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client: subprocess.Popen[bytes] | None = None
    try:
        time.sleep(0.3)
        client = spawn(
            ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
            stdout=subprocess.PIPE,
        )
        assert client.stdout is not None
        out = client.stdout.read()  # until the client exits (bounded by -t)
        # Both are children: wait4 gives the whole life's CPU of each (an exited process
        # has no /proc entry left to read).
        client_cpu = _reap_cpu(client, 10)
        server_cpu = _reap_cpu(server, 10)
    finally:
        for proc in (server, client):
            if proc is not None:
                stop(proc)
    report = json.loads(out)
    sent = report["end"]["sum_received"]["bytes"]
    return {
        "iperf3_gbit_s": sent * 8 / report["end"]["sum_received"]["seconds"] / 1e9,
        "iperf3_cpu_s": server_cpu + client_cpu,
        "iperf3_mb_per_cpu_s": sent / (server_cpu + client_cpu) / 1e6,
        "iperf3_sender_mb_per_cpu_s": sent / client_cpu / 1e6,
        "iperf3_json_host_percent": report["end"]["cpu_utilization_percent"]["host_total"],
        "iperf3_json_remote_percent": report["end"]["cpu_utilization_percent"]["remote_total"],
    }


def _reap_cpu(proc: subprocess.Popen[bytes], timeout: float) -> float:
    """Wait for ``proc`` with wait4; return its user + system CPU seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return float(usage.ru_utime + usage.ru_stime)
        time.sleep(0.05)
    raise RuntimeError("iperf3 server did not exit")


def plot(
    path: Path, systems: dict[str, list[dict[str, float]]], limit_fps: float, frame_kb: float
) -> None:
    """Frames per CPU-second vs clients (log x): each system and the iperf3 limit."""
    import matplotlib  # noqa: PLC0415 - only the plot needs it (the "bench" extra)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    labels = {
        "sim": "gateway sim (stand-in for the gateway)",
        "motion": "motion (netcam)",
        "floor": "writev floor (one writev per client frame, no other work)",
    }
    for name, rows in systems.items():
        ax.plot(
            [r["clients"] for r in rows],
            [r["frames_per_cpu_s"] for r in rows],
            "o-",
            label=labels.get(name, name),
        )
    ax.axhline(
        limit_fps,
        color="gray",
        linestyle="--",
        label=f"iperf3 loopback limit ({frame_kb:.1f} kB frames)",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("clients (one 25 fps 640x480 MJPEG source)")
    ax.set_ylabel("frames delivered per CPU-second")
    ax.set_title("MJPEG fan-out: frames per CPU-second of the serving process")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every system in one run; return the JSON object."""
    counts = [1, 10, 100] if args.quick else [1, 10, 100, 500, 1000]
    window, warmup = (5.0, 1.0) if args.quick else (10.0, 2.0)
    if shutil.which("motion") is None or shutil.which("iperf3") is None:
        raise SystemExit("needs motion and iperf3: apt-get install -y motion iperf3")
    systems: dict[str, list[dict[str, float]]] = {}
    gen = LoadGen()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmpdir, simulator() as sim:
            tmp = Path(tmpdir)
            sim_proc, sim_port = sim
            print(f"{window:.0f} s window per step, {warmup:.0f} s warm-up; system: {args.target}")
            if args.target == "sim":
                systems["sim"] = measure(
                    gen, sim_proc.pid, sim_port, MJPEG_PATH, counts, window, warmup
                )
            else:
                with gateway(sim_port, tmp) as (proc, port):
                    systems["gateway"] = measure(
                        gen, proc.pid, port, MJPEG_PATH, counts, window, warmup, sim_proc.pid
                    )
            print("motion (netcam re-streamer)")
            with motion(sim_port, tmp) as (proc, port):
                systems["motion"] = measure(
                    gen, proc.pid, port, "/", counts, window, warmup, sim_proc.pid
                )
        ours = systems[args.target]
        # The floor sends parts of the gateway's average size (its header is about 70 bytes).
        size = round(statistics.fmean(r["frame_kb"] for r in ours) * 1e3) - 70
        print(f"writev floor ({size} byte payloads)")
        with writev_floor(size) as (proc, port):
            systems["floor"] = measure(gen, proc.pid, port, "/", counts, window, warmup)
    finally:
        gen.close()
    limit = iperf3(3.0 if args.quick else 5.0)
    ours, theirs = systems[args.target], systems["motion"]
    frame_bytes = statistics.fmean(r["frame_kb"] * 1e3 for r in ours)
    limit_fps = limit["iperf3_mb_per_cpu_s"] * 1e6 / frame_bytes
    print(
        f"iperf3 loopback: {limit['iperf3_gbit_s']:.1f} Gbit/s, "
        f"{limit['iperf3_mb_per_cpu_s']:.0f} MB per CPU-s (server+client), "
        f"{limit['iperf3_sender_mb_per_cpu_s']:.0f} MB per CPU-s (sender alone) "
        f"= {limit_fps:.0f} frames of {frame_bytes / 1e3:.1f} kB per CPU-s"
    )
    result = summarize(args.target, ours, theirs, limit, limit_fps, systems["floor"])
    if args.plot:
        plot(args.plot, systems, limit_fps, frame_bytes / 1e3)
        print(f"plot: {args.plot}")
    return result


def summarize(
    target: str, ours: list[dict[str, float]], theirs: list[dict[str, float]],
    limit: dict[str, float], limit_fps: float, floor: list[dict[str, float]],
) -> dict[str, Any]:  # fmt: skip
    """Print the side-by-side table; return the headline figures."""
    result: dict[str, Any] = {"benchmark": "fanout", "target": target}
    print(
        f"{'clients':>7} {target + ' fr/cpu-s':>17} {'motion fr/cpu-s':>16} {'ratio':>7} "
        f"{target + ' MB/cpu-s':>17} {'vs iperf3':>9} {'fps/client':>10} {'rss MB':>7} "
        f"{'floor fr/cpu-s':>15} {'vs floor':>8} {'floor/motion':>12}"
    )
    r3: Callable[[float], float] = lambda x: round(x, 3)  # noqa: E731
    for a, b, f in zip(ours, theirs, floor, strict=True):
        n = int(a["clients"])
        ratio = a["frames_per_cpu_s"] / b["frames_per_cpu_s"]
        share = a["mb_per_cpu_s"] / limit["iperf3_mb_per_cpu_s"]
        of_floor = a["frames_per_cpu_s"] / f["frames_per_cpu_s"]
        floor_vs_motion = f["frames_per_cpu_s"] / b["frames_per_cpu_s"]
        print(
            f"{n:>7} {a['frames_per_cpu_s']:>17.0f} {b['frames_per_cpu_s']:>16.0f} {ratio:>6.1f}x "
            f"{a['mb_per_cpu_s']:>17.0f} {share:>8.1%} {a['fps_per_client']:>10.1f} "
            f"{a['rss_mb']:>7.1f} {f['frames_per_cpu_s']:>15.0f} {of_floor:>7.1%} "
            f"{floor_vs_motion:>11.1f}x"
        )
        result[f"ratio_vs_floor_n{n}"] = r3(of_floor)
        result[f"floor_vs_motion_n{n}"] = round(floor_vs_motion, 2)
        for name, row in ((target, a), ("motion", b), ("floor", f)):
            for key in ("frames_per_cpu_s", "mb_per_cpu_s", "fps_per_client", "min_client_fps",
                        "core_percent", "rss_mb", "frame_kb", "loadgen_core_percent",
                        "threads"):  # fmt: skip
                result[f"{name}_n{n}_{key}"] = round(row[key], 1)
            result[f"{name}_n{n}_us_cpu_per_frame"] = round(row["us_cpu_per_frame"], 1)
        result[f"ratio_vs_motion_n{n}"] = round(ratio, 2)
        result[f"ratio_vs_iperf3_n{n}"] = r3(share)
    top = int(ours[-1]["clients"])
    result.update({k: r3(v) for k, v in limit.items()})
    result["limit_frames_per_cpu_s"] = round(limit_fps)
    result["clients_max"] = top
    result["ratio_vs_motion_at_max"] = result[f"ratio_vs_motion_n{top}"]
    result["ratio_vs_iperf3_at_max"] = result[f"ratio_vs_iperf3_n{top}"]
    result["ratio_vs_iperf3_sender_at_max"] = r3(
        ours[-1]["mb_per_cpu_s"] / limit["iperf3_sender_mb_per_cpu_s"]
    )
    result["rss_mb_at_max"] = round(ours[-1]["rss_mb"], 1)
    result["ratio_vs_floor_at_max"] = result[f"ratio_vs_floor_n{top}"]
    result["floor_vs_motion_at_max"] = result[f"floor_vs_motion_n{top}"]
    return result


def main() -> None:
    """Parse arguments, run, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1, 10, 100 clients, 5 s windows")
    parser.add_argument("--target", choices=["gateway", "sim"], default="gateway")
    parser.add_argument("--plot", type=Path, help="write the PNG plot here (needs matplotlib)")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
