"""Fan-out: one upstream for 100 clients, one transcoder for 20, API, FFmpeg as a client."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import av

from gateway.demux.codec import jpeg_size
from gateway.publish.axis import AxisSettings
from tests.app.stream_client import until

from .axis_client import camera_toml, gateway, mjpeg, open_mjpeg, read_parts

API_KEYS = (
    "kind",
    "remote",
    "target_fps",
    "priority",
    "delivered_fps",
    "skipped",
    "lag_ms",
    "cuts",
)


async def test_100_clients_one_upstream_and_20_share_one_variant() -> None:
    async with gateway(camera_toml()) as gw:
        await gw.live()
        opened = [await open_mjpeg(gw.port, "/mjpg/video.mjpg") for _ in range(100)]
        target = "/mjpg/video.mjpg?resolution=320x240&des_fps=5"
        variant = [await open_mjpeg(gw.port, target) for _ in range(20)]
        try:
            for reader, _, client in opened + variant:
                await read_parts(reader, client, count=3)
            assert all(len(c.parts) == 3 for _, _, c in opened + variant)
            assert all(jpeg_size(c.parts[-1].payload) == (320, 240) for _, _, c in variant)
            assert gw.sim_connections() == 1
            assert gw.sim_requests() == 1
            assert gw.media().renditions.started["jpeg"] == 1
            variants = gw.media().renditions.stats("jpeg")
            assert [v["clients"] for v in variants] == [20]
            async with (
                aiohttp.ClientSession() as session,
                session.get(gw.base + "/api/cameras") as response,
            ):
                (camera,) = (await response.json())["cameras"]
            clients = camera["clients"]
            assert len(clients) == 120
            for entry in clients:
                assert all(key in entry for key in API_KEYS)
                assert entry["remote"] == "127.0.0.1"
                assert entry["frames_held"] <= 2
            assert sum(e["target_fps"] == 5 for e in clients) == 20
            assert {e["variant"] for e in clients} == {"passthrough", "320x240"}
        finally:
            for _, writer, _ in opened + variant:
                writer.close()
        deadline = time.monotonic() + 5
        while gw.fanout().client_count() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        assert gw.fanout().client_count() == 0
        assert gw.sim_requests() == 1


async def test_api_shows_delivered_fps_and_lag() -> None:
    async with gateway(camera_toml()) as gw:
        await gw.live()
        task = asyncio.ensure_future(mjpeg(gw.port, "/mjpg/video.mjpg?req_fps=5", count=40))
        await asyncio.sleep(5)
        async with (
            aiohttp.ClientSession() as session,
            session.get(gw.base + "/api/cameras/cam") as response,
        ):
            (entry,) = (await response.json())["clients"]
        assert entry["kind"] == "mjpeg"
        assert entry["target_fps"] == 5
        assert entry["priority"] == "required"
        assert 4.5 <= entry["delivered_fps"] <= 5.5
        assert entry["skipped"] == 0
        assert 0 <= entry["lag_ms"] < 200
        task.cancel()


def _decode_with_ffmpeg(url: str, frames: int) -> list[tuple[int, int]]:
    sizes = []
    with av.open(url, format="mpjpeg", timeout=10) as container:
        for frame in container.decode(video=0):
            sizes.append((frame.width, frame.height))
            if len(sizes) == frames:
                break
    return sizes


async def test_ffmpeg_mpjpeg_demuxer_reads_the_stream() -> None:
    async with gateway(camera_toml()) as gw:
        await gw.live()
        url = gw.base + "/axis-cgi/mjpg/video.cgi?des_fps=10"
        sizes = await asyncio.to_thread(_decode_with_ffmpeg, url, 10)
        assert sizes == [(640, 480)] * 10
        url = gw.base + "/mjpg/1/video.mjpg?resolution=320x240"
        sizes = await asyncio.to_thread(_decode_with_ffmpeg, url, 5)
        assert sizes == [(320, 240)] * 5


async def test_upstream_rate_follows_clients_with_hysteresis() -> None:
    lower_after = 2.0
    async with gateway(camera_toml(), AxisSettings(upstream_lower_after=lower_after)) as gw:
        await gw.live()
        loop = asyncio.get_running_loop()
        ingest = gw.ingest()
        assert ingest.fps == 25
        slow = asyncio.ensure_future(mjpeg(gw.port, "/mjpg/video.mjpg?req_fps=5", count=30))
        # Churn well inside the delay: a full-rate client comes and goes; nothing reconnects.
        for _ in range(3):
            await mjpeg(gw.port, "/mjpg/video.mjpg", count=2)
            left = loop.time()
            await asyncio.sleep(0.3)
        assert gw.sim_requests() == 1
        await until(lambda: ingest.fps == 5)
        # Lowered no sooner than the delay after the last full-rate client left (the
        # gateway saw it leave then or later), with one reconnect.
        assert loop.time() - left >= lower_after
        await until(lambda: gw.sim_requests() == 2 and gw.sim_connections() == 1)
        assert "fps=5" in ingest.url
        full = await mjpeg(gw.port, "/mjpg/video.mjpg?des_fps=25", count=10)
        assert ingest.fps == 25  # raised at once
        assert gw.sim_requests() == 3
        assert len(full.parts) == 10
        client = await slow
        assert len(client.parts) == 30
        assert ingest.last_error is None
