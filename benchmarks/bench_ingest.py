"""Ingest over loopback: payload bytes per CPU-second and copies per payload byte.

A separate process plays a camera that sends an MJPEG stream (640x480 JPEG parts) as fast
as loopback takes it. In the same run, two readers take the same number of bytes from it:

- **ours**: ``gateway.ingest.CameraStream`` on uvloop — HTTP head parsing, (chunked)
  body decoding, multipart demuxing, JPEG checks, one ``Frame`` per part;
- **limit**: a plain blocking socket ``recv_into`` a reused buffer, which does nothing
  but move the bytes out of the kernel: the cheapest any reader can be.

Only this process's CPU time is counted (the camera runs elsewhere). The ratio
ours/limit is the fraction of the physical limit the ingest path reaches; copies per
payload byte is the ingest's own counter of bytes copied after the kernel handed them over.
Usage: ``python benchmarks/bench_ingest.py [--quick]``; the last line is a JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvloop
from bench_demux import build_stream, encode_frames

from gateway.config import CameraConfig
from gateway.ingest import CameraStream
from gateway.media import Frame, StreamKind

HEAD = b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=myboundary\r\n"
CHUNK = 16384  # chunk size of the chunked variant (cameras use a few KiB to tens of KiB)


def chunked(body: bytes) -> bytes:
    """Return ``body`` in HTTP/1.1 chunked transfer coding (without the last chunk)."""
    pieces = []
    for start in range(0, len(body), CHUNK):
        piece = body[start : start + CHUNK]
        pieces.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    return b"".join(pieces)


def serve(server: socket.socket, body: bytes, head: bytes) -> None:
    """Answer each connection with ``head`` then ``body`` in a loop, until it leaves."""
    while True:
        client, _ = server.accept()
        with client:
            request = b""
            while b"\r\n\r\n" not in request:
                request += client.recv(4096)
            try:
                client.sendall(head + b"\r\n")
                view = memoryview(body)
                while True:
                    client.sendall(view)
            except OSError:
                pass


def camera(conn: Connection, variants: dict[str, bytes]) -> None:
    """Listen on one port per stream variant; report the ports; serve forever."""
    ports = {}
    threads = []
    for name, body in variants.items():
        server = socket.create_server(("127.0.0.1", 0))
        ports[name] = server.getsockname()[1]
        head = HEAD + (b"Transfer-Encoding: chunked\r\n" if name == "chunked" else b"")
        threads.append(threading.Thread(target=serve, args=(server, body, head), daemon=True))
    for thread in threads:
        thread.start()
    conn.send(ports)
    for thread in threads:
        thread.join()


def raw_reader(port: int, target: int) -> float:
    """Read ``target`` bytes with recv_into; return the CPU seconds it took."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /axis-cgi/mjpg/video.cgi HTTP/1.0\r\n\r\n")
        buffer = bytearray(262144)
        view = memoryview(buffer)
        got = 0
        while got < target // 10:  # warm-up, as for ours
            got += sock.recv_into(view)
        got = 0
        start = time.process_time()
        while got < target:
            n = sock.recv_into(view)
            if not n:
                raise RuntimeError("camera closed")
            got += n
        return time.process_time() - start


async def ours(port: int, target: int) -> tuple[float, int, float, int]:
    """Ingest ``target`` payload bytes; return (CPU seconds, payload bytes, copies/byte, frames)."""
    done = asyncio.Event()
    warm = target // 10
    state = {
        "payload": 0,
        "frames": 0,
        "cpu": 0.0,
        "copied": 0,
        "start_payload": 0,
        "start_frames": 0,
    }
    stream: CameraStream

    def on_frame(frame: Frame) -> None:
        state["payload"] += len(frame.payload)
        state["frames"] += 1
        if not state["cpu"] and state["payload"] >= warm:
            state["cpu"] = time.process_time()
            state["copied"] = stream.bytes_copied
            state["start_payload"] = state["payload"]
            state["start_frames"] = state["frames"]
        elif state["cpu"] and state["payload"] - state["start_payload"] >= target:
            done.set()

    config = CameraConfig(name="bench", index=1, source=f"http://127.0.0.1:{port}")
    stream = CameraStream(config, StreamKind.MJPEG, on_frame=on_frame)
    await stream.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=120)
        cpu = time.process_time() - float(state["cpu"])
        payload = int(state["payload"] - state["start_payload"])
        copies = (stream.bytes_copied - int(state["copied"])) / payload
        frames = int(state["frames"] - state["start_frames"])
        if stream.frames_dropped:
            raise RuntimeError(f"{stream.frames_dropped} frames dropped")
    finally:
        await stream.stop()
    return cpu, payload, copies, frames


async def from_sim(seconds: float) -> dict[str, float]:
    """Ingest the simulator's 25 fps 640x480 MJPEG (run in another process) for ``seconds``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "--log-level", "warning", "sim",
        "--listen", "127.0.0.1:0", stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    port = None
    try:
        # The simulator logs nothing at warning level; find its port from /proc instead.
        for _ in range(100):
            await asyncio.sleep(0.1)
            port = _listening_port(proc.pid)
            if port:
                break
        if not port:
            raise RuntimeError("simulator did not start")
        frames: list[int] = []
        warm = asyncio.Event()

        def on_frame(frame: Frame) -> None:
            frames.append(frame.size)
            if len(frames) == 25:  # warm-up: connected, first second delivered
                warm.set()

        config = CameraConfig(name="sim", index=1, source=f"http://127.0.0.1:{port}", fps=25)
        stream = CameraStream(config, StreamKind.MJPEG, on_frame=on_frame)
        await stream.start()
        await asyncio.wait_for(warm.wait(), timeout=30)
        cpu0, copied0, n0, payload0 = (
            time.process_time(),
            stream.bytes_copied,
            len(frames),
            sum(frames),
        )
        await asyncio.sleep(seconds)
        cpu = time.process_time() - cpu0
        n = len(frames) - n0
        payload = sum(frames) - payload0
        copies = (stream.bytes_copied - copied0) / payload
        await stream.stop()
    finally:
        proc.kill()
        await proc.wait()
    return {
        "sim_fps": round(n / seconds, 2),
        "sim_cpu_ms_per_frame": round(cpu / n * 1000, 3),
        "sim_core_percent": round(cpu / seconds * 100, 2),
        "sim_copies_per_byte": round(copies, 4),
    }


def _listening_port(pid: int) -> int | None:
    """Return the TCP port process ``pid`` listens on (from /proc/net/tcp), if any."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
            return int(fields[1].split(":")[1], 16)
    return None


def bench_ingest(parts: int, target: int) -> dict[str, float]:
    """Run ours and the recv_into limit side by side for each stream variant."""
    frames = encode_frames()
    with_cl = build_stream(frames, parts, content_length=True)
    variants = {
        "cl": with_cl,
        "nocl": build_stream(frames, parts, content_length=False),
        "chunked": chunked(with_cl),
    }
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(target=camera, args=(child, variants), daemon=True)
    proc.start()
    ports: dict[str, int] = parent.recv()
    results: dict[str, float] = {"target_bytes": float(target)}
    try:
        print(f"{target / 1e6:.0f} MB per reader, 640x480 JPEG parts, camera in another process")
        print(
            f"{'variant':<10} {'ours MB/cpu-s':>14} {'limit MB/cpu-s':>15} {'ratio':>6} "
            f"{'copies/byte':>12} {'frames/cpu-s':>13}"
        )
        for name in variants:
            limit_cpu = raw_reader(ports[name], target)
            cpu, payload, copies, nframes = uvloop.run(ours(ports[name], target))
            ours_rate = payload / cpu / 1e6
            limit_rate = target / limit_cpu / 1e6
            print(
                f"{name:<10} {ours_rate:>14.0f} {limit_rate:>15.0f} "
                f"{ours_rate / limit_rate:>6.2f} {copies:>12.3f} {nframes / cpu:>13.0f}"
            )
            results[f"{name}_ours_mb_per_cpu_s"] = round(ours_rate, 1)
            results[f"{name}_limit_mb_per_cpu_s"] = round(limit_rate, 1)
            results[f"{name}_ratio_to_limit"] = round(ours_rate / limit_rate, 3)
            results[f"{name}_copies_per_byte"] = round(copies, 4)
            results[f"{name}_frames_per_cpu_s"] = round(nframes / cpu)
    finally:
        proc.kill()
    sim = uvloop.run(from_sim(5.0 if target < 1e9 else 10.0))
    print(
        f"from the simulator (25 fps 640x480, another process): {sim['sim_fps']} fps, "
        f"{sim['sim_cpu_ms_per_frame']} ms CPU per frame ({sim['sim_core_percent']}% of a core), "
        f"{sim['sim_copies_per_byte']} copies per payload byte"
    )
    results.update(sim)
    return results


def main() -> None:
    """Parse arguments, run, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller run (under 60 s)")
    args = parser.parse_args()
    target = 200_000_000 if args.quick else 1_000_000_000
    results = bench_ingest(parts=200, target=target)
    print(json.dumps({"benchmark": "ingest", **results}))


if __name__ == "__main__":
    main()
