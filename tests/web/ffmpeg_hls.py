"""A live HLS stream made by the FFmpeg CLI's HLS muxer, served on loopback.

The stand-in the hls.js harness tests itself against, and the FFmpeg comparison point for
the gateway's own HLS: the simulator's MJPEG re-encoded with libx264, one keyframe per
segment, fMP4 segments in a directory that a small aiohttp server serves without caching
(the playlist changes every segment).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

#: The playlist's name in the served directory.
PLAYLIST = "index.m3u8"
#: Seconds the muxer has to write its first segments.
START_TIMEOUT = 20.0
#: Seconds FFmpeg has to finish after SIGTERM before it is killed.
STOP_TIMEOUT = 5.0


def ffmpeg_path() -> str | None:
    """Return the FFmpeg CLI, if installed."""
    return shutil.which("ffmpeg")


def hls_command(
    ffmpeg: str, source: str, directory: Path, *, segment_seconds: float, list_size: int
) -> list[str]:
    """Return the FFmpeg command that turns the MJPEG at source into live HLS in directory."""
    return [
        ffmpeg,
        "-nostdin",
        "-loglevel",
        "error",
        # The camera's pictures carry no timestamps; stamp them on arrival, as live input.
        "-use_wallclock_as_timestamps",
        "1",
        "-f",
        "mpjpeg",
        "-i",
        source,
        "-an",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        # One IDR per segment, on time: the muxer cuts segments only at keyframes.
        "-force_key_frames",
        f"expr:gte(t,n_forced*{segment_seconds})",
        "-sc_threshold",
        "0",
        "-f",
        "hls",
        "-hls_time",
        str(segment_seconds),
        "-hls_list_size",
        str(list_size),
        "-hls_segment_type",
        "fmp4",
        # temp_file: segments appear under their name only when complete.
        "-hls_flags",
        "delete_segments+independent_segments+temp_file+program_date_time",
        "-hls_fmp4_init_filename",
        "init.mp4",
        "-hls_segment_filename",
        str(directory / "seg%05d.m4s"),
        str(directory / PLAYLIST),
    ]


async def _no_cache(request: web.Request, response: web.StreamResponse) -> None:
    """Have the browser revalidate every load: the playlist is rewritten every segment."""
    response.headers["Cache-Control"] = "no-cache"


@contextlib.asynccontextmanager
async def serve_directory(directory: Path) -> AsyncIterator[str]:
    """Serve directory's files on 127.0.0.1, uncached; yield the base URL (ending in /)."""
    app = web.Application()
    app.router.add_static("/hls/", directory)
    app.on_response_prepare.append(_no_cache)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hls/"
    finally:
        await runner.cleanup()


def _segments(playlist: Path) -> int:
    """Return how many segments the playlist lists (0 when not written yet)."""
    try:
        text = playlist.read_text()
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if line.startswith("#EXTINF:"))


@contextlib.asynccontextmanager
async def ffmpeg_hls(
    source: str,
    directory: Path,
    *,
    segment_seconds: float = 1.0,
    list_size: int = 6,
    min_segments: int = 2,
) -> AsyncIterator[str]:
    """Run FFmpeg's HLS muxer on the MJPEG at source and serve it; yield the playlist URL.

    Yields once the playlist lists min_segments segments, so a player starts without
    404s; fails with FFmpeg's log if it exits or is too slow.
    """
    ffmpeg = ffmpeg_path()
    assert ffmpeg is not None, "no FFmpeg CLI on this machine"
    command = hls_command(
        ffmpeg, source, directory, segment_seconds=segment_seconds, list_size=list_size
    )
    log = directory.parent / f"{directory.name}-ffmpeg.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=stderr, stderr=stderr
        )
    try:
        async with serve_directory(directory) as base:
            deadline = asyncio.get_running_loop().time() + START_TIMEOUT
            while _segments(directory / PLAYLIST) < min_segments:
                assert process.returncode is None, f"ffmpeg exited: {log.read_text()}"
                now = asyncio.get_running_loop().time()
                assert now < deadline, f"no {min_segments} segments in {START_TIMEOUT} s"
                await asyncio.sleep(0.1)
            yield base + PLAYLIST
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
