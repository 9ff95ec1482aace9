"""Multipart demux throughput: ours vs aiohttp's MultipartReader vs FFmpeg's mpjpeg (PyAV).

One MJPEG stream of 640x480 JPEG parts (a few distinct frames encoded once with PyAV's
mjpeg encoder from numpy test patterns, then repeated), in two versions: with and
without a Content-Length per part. Every demuxer gets the same bytes in the same run
and must return every part whole; the figures are MB/s of stream, frames/s, and the
ratios ours/aiohttp and ours/FFmpeg (DESIGN §8: >= 20x and >= 3x).

    python benchmarks/bench_demux.py [--quick] [--parts N]

The last line of stdout is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from collections.abc import Callable
from fractions import Fraction

import aiohttp
import av
import numpy as np
from aiohttp.base_protocol import BaseProtocol

from gateway.demux.multipart import MultipartDemuxer, PartReceived

BOUNDARY = b"myboundary"
CONTENT_TYPE = "multipart/x-mixed-replace;boundary=myboundary"
CHUNK = 65536
#: A demuxer run: stream bytes and part count in, (frames, payload bytes) out.
Runner = Callable[[bytes, int], tuple[int, int]]


def encode_frames(count: int = 8, width: int = 640, height: int = 480) -> list[bytes]:
    """Encode ``count`` distinct test-pattern frames as baseline JPEG (~30-60 KB each)."""
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    codec.options = {"qmin": "4", "qmax": "4"}  # constant quality, not rate control
    y, x = np.mgrid[0:height, 0:width]
    # A moving colour pattern plus sensor-like noise: realistic JPEG sizes for 640x480.
    base = np.stack([x * 255 // width, y * 255 // height, (x ^ y) % 256], axis=-1)
    frames: list[bytes] = []
    for i in range(count):
        noise = np.random.default_rng(i).integers(0, 14, (height, width, 3))
        pixels = (np.roll(base, i * 40, axis=1) + noise).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuvj420p")
        frames += [bytes(packet) for packet in codec.encode(frame)]
    frames += [bytes(packet) for packet in codec.encode(None)]
    return frames


def build_stream(frames: list[bytes], parts: int, *, content_length: bool) -> bytes:
    """Return a VAPIX §5.2.7 body of ``parts`` parts."""
    out = []
    for i in range(parts):
        frame = frames[i % len(frames)]
        head = b"--%s\r\nContent-Type: image/jpeg\r\n" % BOUNDARY
        if content_length:
            head += b"Content-Length: %d\r\n" % len(frame)
        out.append(head + b"\r\n" + frame + b"\r\n")
    # End as FFmpeg's own mpjpeg muxer does: with an opening delimiter.
    out.append(b"--%s\r\n" % BOUNDARY)
    return b"".join(out)


def ours_receive_data(
    data: bytes, parts: int, used: list[MultipartDemuxer] | None = None
) -> tuple[int, int]:
    """Ours, fed with receive_data() in 64 KiB chunks (as Protocol.data_received would)."""
    demuxer = MultipartDemuxer(CONTENT_TYPE)
    if used is not None:
        used.append(demuxer)
    view = memoryview(data)
    frames = size = 0
    for pos in range(0, len(data), CHUNK):
        for event in demuxer.receive_data(view[pos : pos + CHUNK]):
            if isinstance(event, PartReceived):
                frames += 1
                size += len(event.payload)
    demuxer.receive_eof()
    return frames, size


def ours_get_buffer(
    data: bytes, parts: int, used: list[MultipartDemuxer] | None = None
) -> tuple[int, int]:
    """Ours through get_buffer()/buffer_updated(); the slice copy stands in for recv_into."""
    demuxer = MultipartDemuxer(CONTENT_TYPE)
    if used is not None:
        used.append(demuxer)
    view = memoryview(data)
    frames = size = pos = 0
    while pos < len(data):
        buf = demuxer.get_buffer(CHUNK)
        n = min(len(buf), CHUNK, len(data) - pos)
        buf[:n] = view[pos : pos + n]
        pos += n
        for event in demuxer.buffer_updated(n):
            if isinstance(event, PartReceived):
                frames += 1
                size += len(event.payload)
    demuxer.receive_eof()
    return frames, size


def aiohttp_reader(data: bytes, parts: int) -> tuple[int, int]:
    """aiohttp's MultipartReader over a StreamReader fed the same 64 KiB chunks.

    A live stream has no end, so it reads ``parts`` parts (each whole) and stops, as a
    camera client would; aiohttp refuses to look for a part after the last delimiter.
    """

    async def run() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        stream = aiohttp.StreamReader(BaseProtocol(loop), limit=2**30, loop=loop)
        for pos in range(0, len(data), CHUNK):
            stream.feed_data(data[pos : pos + CHUNK])
        stream.feed_eof()
        reader = aiohttp.MultipartReader({"Content-Type": CONTENT_TYPE}, stream)
        frames = size = 0
        while frames < parts:
            part = await reader.next()
            assert isinstance(part, aiohttp.BodyPartReader)
            payload = await part.read()
            frames += 1
            size += len(payload)
        return frames, size

    return asyncio.run(run())


def ffmpeg_mpjpeg(data: bytes, parts: int) -> tuple[int, int]:
    """FFmpeg's mpjpeg demuxer through PyAV, reading from memory."""
    frames = size = 0
    with av.open(io.BytesIO(data), mode="r", format="mpjpeg") as container:
        try:
            for packet in container.demux():
                if packet.size:
                    frames += 1
                    size += packet.size
        except av.error.InvalidDataError:
            # It wants headers after the last delimiter; only an error before that counts.
            if frames < parts:
                raise
    return frames, size


def measure(runner: Runner, data: bytes, parts: int, repeat: int) -> tuple[float, int, int]:
    """Return the best wall time of ``repeat`` runs, and what the last run returned."""
    best = float("inf")
    frames = size = 0
    for _ in range(repeat):
        start = time.perf_counter()
        frames, size = runner(data, parts)
        best = min(best, time.perf_counter() - start)
    return best, frames, size


def bench_demux(parts: int, repeat: int) -> dict[str, float]:
    """Run every demuxer on both streams; print a table; return the headline figures."""
    frames = encode_frames()
    expected = sum(len(frames[i % len(frames)]) for i in range(parts))
    runners: dict[str, Runner] = {
        "ours (receive_data)": ours_receive_data,
        "ours (get_buffer)": ours_get_buffer,
        "aiohttp MultipartReader": aiohttp_reader,
        "ffmpeg mpjpeg (PyAV)": ffmpeg_mpjpeg,
    }
    sizes = sorted(len(f) for f in frames)
    print(f"{parts} parts of 640x480 JPEG, {sizes[0]}-{sizes[-1]} bytes each")
    results: dict[str, float] = {"parts": parts}
    for label, with_length in (("cl", True), ("nocl", False)):
        data = build_stream(frames, parts, content_length=with_length)
        print(f"\n{'with' if with_length else 'without'} Content-Length: {len(data) / 1e6:.1f} MB")
        mbps: dict[str, float] = {}
        for name, runner in runners.items():
            seconds, got, size = measure(runner, data, parts, repeat)
            if (got, size) != (parts, expected):
                raise SystemExit(
                    f"{name}: got {got} parts / {size} bytes, want {parts} / {expected}"
                )
            mbps[name] = len(data) / seconds / 1e6
            print(f"  {name:26} {mbps[name]:9.1f} MB/s {parts / seconds:10.0f} frames/s")
        copied: dict[str, float] = {}
        for name, feed in (("receive_data", ours_receive_data), ("get_buffer", ours_get_buffer)):
            used: list[MultipartDemuxer] = []
            feed(data, parts, used)
            copied[name] = used[0].bytes_copied / expected
        print(
            f"  bytes copied by ours per payload byte: receive_data {copied['receive_data']:.3f},"
            f" get_buffer {copied['get_buffer']:.3f}"
        )
        ours = max(mbps["ours (receive_data)"], mbps["ours (get_buffer)"])
        ratio_aiohttp = ours / mbps["aiohttp MultipartReader"]
        ratio_ffmpeg = ours / mbps["ffmpeg mpjpeg (PyAV)"]
        print(f"  ours/aiohttp {ratio_aiohttp:.1f}x   ours/ffmpeg {ratio_ffmpeg:.2f}x")
        results |= {
            f"{label}_ours_receive_data_mbps": round(mbps["ours (receive_data)"], 1),
            f"{label}_ours_get_buffer_mbps": round(mbps["ours (get_buffer)"], 1),
            f"{label}_aiohttp_mbps": round(mbps["aiohttp MultipartReader"], 1),
            f"{label}_ffmpeg_mbps": round(mbps["ffmpeg mpjpeg (PyAV)"], 1),
            f"{label}_ratio_aiohttp": round(ratio_aiohttp, 2),
            f"{label}_ratio_ffmpeg": round(ratio_ffmpeg, 2),
            f"{label}_ours_receive_data_copied": round(copied["receive_data"], 3),
            f"{label}_ours_get_buffer_copied": round(copied["get_buffer"], 3),
        }
    return results


def main() -> None:
    """Parse arguments, run the benchmark, print the JSON headline last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (under 60 s)")
    parser.add_argument("--parts", type=int, default=2000, help="parts per stream (>= 2000)")
    parser.add_argument("--no-ingest", action="store_true", help="demux only, no loopback ingest")
    args = parser.parse_args()
    results = {"benchmark": "demux", **bench_demux(args.parts, 3 if args.quick else 10)}
    if not args.no_ingest:
        # Ingest over loopback: payload bytes per CPU-second and copies per payload byte.
        from bench_ingest import bench_ingest  # noqa: PLC0415 - same folder, optional part

        print()
        target = 200_000_000 if args.quick else 1_000_000_000
        ingest = bench_ingest(parts=200, target=target)
        results.update({f"ingest_{key}": value for key, value in ingest.items()})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
