"""App wiring of the MPEG-2 and audio fan-outs: AppKeys, runtimes, clean shutdown."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.app import CAMERAS, create_app
from gateway.config import parse_config
from gateway.media import StreamKind
from gateway.publish import axis
from gateway.transcode import PCM_KEY
from tests.app.stream_client import open_stream, read_body, streams_toml, until
from tests.publish.axis_client import camera_toml

PLAIN = camera_toml("plain", extra="mpeg2 = false\naudio = false\n")


async def test_sources_under_app_keys_and_shutdown_ends_clients() -> None:
    app = create_app(parse_config(streams_toml() + PLAIN, {}))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        runtimes = app[CAMERAS]
        assert [c.name for c in app[axis.CAMERA_CONFIGS]] == ["cam", "plain"]
        assert list(app[axis.MPEG2_SOURCES].keys()) == ["cam"]
        assert list(app[axis.AUDIO_SOURCES].keys()) == ["cam"]
        media = runtimes["cam"].media
        assert media.mpeg2 is app[axis.MPEG2_SOURCES]["cam"].ring
        assert media.audio is app[axis.AUDIO_SOURCES]["cam"].ring
        assert runtimes["plain"].media.mpeg2 is None
        assert runtimes["plain"].media.audio is None
        mpeg2, audio = app[axis.MPEG2_SOURCES]["cam"], app[axis.AUDIO_SOURCES]["cam"]
        assert media.upstreams[StreamKind.MPEG2] is runtimes["cam"].streams[StreamKind.MPEG2]
        assert media.upstreams[StreamKind.AUDIO] is runtimes["cam"].streams[StreamKind.AUDIO]
        pcm = media.renditions.get(PCM_KEY)
        assert pcm is not None
        await until(lambda: mpeg2.ring.newest_cut is not None)
        clients = [
            await open_stream(port, "/axis-cgi/mpeg2/video.cgi"),
            await open_stream(port, "/axis-cgi/audio/receive.cgi"),
        ]
        await until(lambda: len(mpeg2.ring) == 1 and len(audio.ring) == 1)
        snapshot = runtimes["cam"].snapshot()
        assert sorted(c["kind"] for c in snapshot["clients"]) == ["audio", "mpeg2"]
        started = time.monotonic()
    finally:
        await runner.cleanup()
    # Stopping the app closes the rings: each client gets what was pending, then EOF.
    assert time.monotonic() - started < 5.0
    for reader, writer, client in clients:
        await read_body(reader, client, seconds=3.0)
        assert client.eof
        writer.close()
    assert mpeg2.ring.closed
    assert audio.ring.closed
    assert pcm.decoder.closed
