"""H.264 encode pipeline cost per frame: phases, thread choices, and a bare PyAV loop.

A 25 fps MJPEG source (a textured picture panning sideways plus sensor-like noise,
encoded once as JPEG at the simulator's quality) is turned into H.264 four ways, each
on the same JPEGs in the same run:

- phases alone: mjpeg decode; yuvj420p -> limited-range yuv420p (a reused
  reformatter, 1 or automatic swscale threads, the pipeline's fast-bilinear flags or
  bilinear); libx264 encode, 1 or automatic threads;
- a bare PyAV loop: decode, ``frame.reformat(format="yuv420p")`` (a plane copy that
  keeps full range), encode with the same x264 options and an IDR every 25 frames;
  and the same loop converting to limited range as the pipeline does;
- ``H264Pipeline.encode`` (the gateway's, threads=1).

    python benchmarks/bench_h264_pipeline.py [--quick] [--size WxH]...

Figures are milliseconds per frame, wall and CPU (best of the runs). The last line of stdout is one
JSON object with them and the pipeline / bare-loop ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import ColorRange, Interpolation, VideoReformatter

from gateway.transcode.h264 import CONVERT, H264Pipeline
from gateway.transcode.h264_encoder import open_encoder
from gateway.transcode.h264_params import H264Settings

FPS = 25
TICKS = 90_000 // FPS


def make_jpegs(count: int, size: tuple[int, int]) -> list[bytes]:
    """Return ``count`` JPEGs of a noisy texture panning 4 pixels per frame."""
    width, height = size
    y, x = np.mgrid[0:height, 0 : width + 4 * count]
    base = np.stack([x * 255 // (width + 4 * count), y * 255 // height, (x ^ y) % 256], -1)
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuvj420p"
    ctx.time_base = Fraction(1, FPS)
    ctx.qmin = ctx.qmax = 4  # the simulator's JPEG quality
    out: list[bytes] = []
    for i in range(count):
        noise = np.random.default_rng(i).integers(0, 12, (height, width, 3))
        rgb = (base[:, 4 * i : 4 * i + width] + noise).clip(0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
        out += [bytes(packet) for packet in ctx.encode(frame)]
    return out


def best_ms(runs: dict[str, Callable[[], int]], repeats: int) -> dict[str, float]:
    """Return the best wall and CPU milliseconds per frame of each run, runs interleaved.

    Interleaving keeps a burst of load on a shared machine from favouring one run; CPU
    time (all threads of the process) is what a busy gateway pays, wall time what one
    picture's latency is.
    """
    best = {f"{name}_{clock}": float("inf") for name in runs for clock in ("wall", "cpu")}
    for _ in range(repeats):
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            frames = run()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            best[f"{name}_wall"] = min(best[f"{name}_wall"], wall / frames)
            best[f"{name}_cpu"] = min(best[f"{name}_cpu"], cpu / frames)
    return {name: value * 1000 for name, value in best.items()}


def decoder() -> Any:
    """Return a single-threaded mjpeg decoder."""
    ctx = av.CodecContext.create("mjpeg", "r")
    ctx.thread_count = 1
    return ctx


def measure(size: tuple[int, int], count: int, repeats: int) -> dict[str, float]:
    """Return the per-frame figures for one source size."""
    jpegs = make_jpegs(count, size)
    settings = H264Settings()
    dec = decoder()
    decoded = [dec.decode(av.Packet(data))[0] for data in jpegs]
    reformatter = VideoReformatter()

    def decode() -> int:
        ctx = decoder()
        for data in jpegs:
            ctx.decode(av.Packet(data))
        return count

    def convert(threads: int, interpolation: Interpolation = CONVERT) -> list[Any]:
        return [
            reformatter.reformat(
                frame,
                format="yuv420p",
                src_color_range=ColorRange.JPEG,
                dst_color_range=ColorRange.MPEG,
                interpolation=interpolation,
                threads=threads,
            )
            for frame in decoded
        ]

    converted = convert(1)

    def encode(threads: int) -> int:
        ctx = open_encoder("libx264", settings, size, FPS, threads=threads)
        for index, frame in enumerate(converted):
            frame.pts = index * TICKS
            frame.pict_type = PictureType.I if index % FPS == 0 else PictureType.NONE
            ctx.encode(frame)
        return count

    def bare(limited: bool) -> int:
        ctx = decoder()
        enc = open_encoder("libx264", settings, size, FPS, threads=1)
        for index, data in enumerate(jpegs):
            (picture,) = ctx.decode(av.Packet(data))
            # Without dst_color_range this is a plane copy that keeps full range.
            frame = picture.reformat(
                format="yuv420p", dst_color_range=ColorRange.MPEG if limited else None
            )
            frame.pts = index * TICKS
            frame.pict_type = PictureType.I if index % FPS == 0 else PictureType.NONE
            enc.encode(frame)
        return count

    def pipeline() -> int:
        encoder = H264Pipeline(settings, fps=FPS)
        for index, data in enumerate(jpegs):
            encoder.encode(data, index * TICKS)
        return count

    figures = best_ms(
        {
            "decode": decode,
            "convert_t1": lambda: len(convert(1)),
            "convert_tauto": lambda: len(convert(0)),
            "convert_bilinear_t1": lambda: len(convert(1, Interpolation.BILINEAR)),
            "encode_t1": lambda: encode(1),
            "encode_tauto": lambda: encode(0),
            "bare_loop": lambda: bare(False),
            "bare_loop_limited": lambda: bare(True),
            "pipeline": pipeline,
        },
        repeats,
    )
    for clock in ("wall", "cpu"):
        pipe = figures[f"pipeline_{clock}"]
        figures[f"ratio_bare_{clock}"] = pipe / figures[f"bare_loop_{clock}"]
        figures[f"ratio_bare_limited_{clock}"] = pipe / figures[f"bare_loop_limited_{clock}"]
    figures["jpeg_kb"] = sum(map(len, jpegs)) / len(jpegs) / 1000
    return {key: round(value, 3) for key, value in figures.items()}


def main() -> None:
    """Run the benchmark and print a table and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and runs")
    parser.add_argument("--size", action="append", help="WxH (default 640x480 and 1280x720)")
    args = parser.parse_args()
    count, repeats = (25, 2) if args.quick else (100, 5)
    sizes = [tuple(map(int, s.split("x"))) for s in args.size or ["640x480", "1280x720"]]
    result: dict[str, object] = {"benchmark": "h264_pipeline", "frames": count}
    for width, height in sizes:
        figures = measure((width, height), count, repeats)
        print(f"{width}x{height}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
        result[f"{width}x{height}"] = figures
    print(json.dumps(result))


if __name__ == "__main__":
    main()
