"""MPEG-2 and audio fan-out next to MJPEG: gateway CPU per delivered MB, and prebuffer memory.

One simulator (25 fps 640x480: MJPEG, MPEG-2 elementary stream, G.726 audio) and one
``gateway serve`` with all three streams of one camera, each in its own process; N
clients per kind (default 100) read through the load generator (``loadgen.py``, another
process: it counts bytes, multipart parts and MPEG-2 picture start codes). In the same run:

- **idle**: the gateway's CPU with no clients (the three ingests), subtracted as the
  baseline so that the per-MB figures are the fan-out's own;
- **mjpeg / mpeg2 / audio**: N clients on ``/axis-cgi/mjpg/video.cgi``,
  ``/axis-cgi/mpeg2/video.cgi`` and ``/axis-cgi/audio/receive.cgi``, one kind at a time:
  delivered MB and parts (pictures for MPEG-2) per gateway CPU-second, CPU-ms per delivered
  MB (net of the baseline), µs per delivered part;
- **prebuffer memory**: what ``/api/cameras`` reports the MPEG-2 ring holding
  (``prebuffer_bytes`` over ``prebuffer_seconds``), and the gateway's RSS with
  ``mpeg2_prebuffer_seconds = 10`` against a second gateway with ``0.5``.

    python benchmarks/bench_streams.py [--clients N] [--window S]

The last line of stdout is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench_fanout import LoadGen, cpu_seconds, measure, simulator, status
from bench_fanout import gateway as fanout_gateway

GATEWAY_TOML = """\
[server]
listen = "127.0.0.1:{port}"

[limits]
max_clients_per_camera = 5000

[[cameras]]
name = "bench"
source = "http://127.0.0.1:{sim_port}"
mjpeg = true
mpeg2 = true
audio = true
fps = 25
mpeg2_prebuffer_seconds = {prebuffer}
"""

PATHS = {
    "mjpeg": "/axis-cgi/mjpg/video.cgi",
    "mpeg2": "/axis-cgi/mpeg2/video.cgi",
    "audio": "/axis-cgi/audio/receive.cgi",
}


@contextmanager
def gateway(sim_port: int, tmp: Path, prebuffer: float) -> Iterator[tuple[int, int]]:
    """Run ``gateway serve`` with every stream of one simulated camera; yield (pid, port)."""
    with fanout_gateway(sim_port, tmp, GATEWAY_TOML, prebuffer=prebuffer) as (proc, port):
        yield proc.pid, port


def api_stream(port: int, kind: str) -> dict[str, Any]:
    """Return the camera's stream object from ``/api/cameras``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras", timeout=5) as answer:
        cameras = json.load(answer)
    stream: dict[str, Any] = cameras["cameras"][0]["streams"][kind]
    return stream


def idle_cpu_rate(pid: int, seconds: float) -> float:
    """Return the gateway's CPU-seconds per second with no clients."""
    start, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - start) / (time.monotonic() - t0)


def run(clients: int, window: float, warmup: float) -> dict[str, Any]:
    """Measure every kind against the same gateway, then the prebuffer; return the JSON."""
    result: dict[str, Any] = {"benchmark": "streams", "clients": clients}
    gen = LoadGen()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmpdir, simulator() as sim:
            tmp = Path(tmpdir)
            _, sim_port = sim
            with gateway(sim_port, tmp, 10.0) as (pid, port):
                time.sleep(12.0)  # fill the 10 s prebuffer before measuring anything
                idle = idle_cpu_rate(pid, window)
                result["idle_core_percent"] = round(100 * idle, 2)
                print(f"idle (three ingests): {100 * idle:.2f}% of a core")
                ring = api_stream(port, "mpeg2")
                for key in ("prebuffer_seconds", "prebuffer_bytes"):
                    result[f"mpeg2_{key}"] = ring.get(key)
                result["rss_mb_prebuffer_10s"] = round(status(pid)[0], 1)
                for kind, path in PATHS.items():
                    print(f"{kind}: {clients} clients on {path}")
                    row = measure(gen, pid, port, path, [clients], window, warmup)[0]
                    net = max(row["cpu_s"] - idle * row["seconds"], 1e-9)
                    mb = row["bytes"] / 1e6
                    result[f"{kind}_mb_per_cpu_s"] = round(mb / row["cpu_s"], 1)
                    result[f"{kind}_cpu_ms_per_mb"] = round(1e3 * row["cpu_s"] / mb, 3)
                    result[f"{kind}_net_cpu_ms_per_mb"] = round(1e3 * net / mb, 3)
                    result[f"{kind}_us_per_part"] = round(1e6 * net / max(row["frames"], 1), 2)
                    result[f"{kind}_parts_per_s_per_client"] = round(row["fps_per_client"], 2)
                    result[f"{kind}_min_client_rate"] = round(row["min_client_fps"], 2)
                    result[f"{kind}_mb_per_s"] = round(mb / row["seconds"], 2)
                    result[f"{kind}_core_percent"] = round(row["core_percent"], 1)
            with gateway(sim_port, tmp, 0.5) as (pid, port):
                time.sleep(12.0)
                result["rss_mb_prebuffer_0_5s"] = round(status(pid)[0], 1)
    finally:
        gen.close()
    report(result)
    return result


def report(result: dict[str, Any]) -> None:
    """Print the side-by-side table."""
    print(
        f"{'kind':>6} {'MB/s out':>9} {'MB/CPU-s':>9} {'CPU-ms/MB':>10} {'net CPU-ms/MB':>14} "
        f"{'us/part net':>12} {'parts/s/client':>15}"
    )
    for kind in PATHS:
        r = {key.removeprefix(kind + "_"): v for key, v in result.items() if key.startswith(kind)}
        print(
            f"{kind:>6} {r['mb_per_s']:>9.2f} {r['mb_per_cpu_s']:>9.1f} "
            f"{r['cpu_ms_per_mb']:>10.2f} {r['net_cpu_ms_per_mb']:>14.2f} "
            f"{r['us_per_part']:>12.2f} {r['parts_per_s_per_client']:>15.2f}"
        )
    print(
        f"prebuffer: {result['mpeg2_prebuffer_bytes']} bytes over "
        f"{result['mpeg2_prebuffer_seconds']} s held; RSS {result['rss_mb_prebuffer_10s']} MB "
        f"(10 s) vs {result['rss_mb_prebuffer_0_5s']} MB (0.5 s)"
    )


def main() -> None:
    """Parse arguments, run, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=100, help="clients per kind")
    parser.add_argument("--window", type=float, default=8.0, help="seconds measured per kind")
    args = parser.parse_args()
    print(json.dumps(run(args.clients, args.window, 2.0)))


if __name__ == "__main__":
    main()
