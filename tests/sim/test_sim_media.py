"""MPEG-2 (elementary and program stream) and G.726 / G.711 audio, decoded by PyAV."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import Any

import av
import numpy as np
import pytest

from gateway.sim import SimOptions, SimServer
from gateway.sim.pattern import read_block_code

Fetch = Callable[..., Awaitable[Any]]
Parts = Callable[..., list[Any]]


def decode_video(data: bytes, fmt: str) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data), "r", format=fmt) as container:
        return list(container.decode(video=0))


@pytest.mark.parametrize(("query", "fmt"), [("", "mpegvideo"), ("&format=ps", "mpeg")])
async def test_mpeg2_decodes_from_first_byte(fetch: Fetch, query: str, fmt: str) -> None:
    raw = await fetch("/axis-cgi/mpeg2/video.cgi?duration=1" + query)
    assert raw.status == 200
    assert raw.closed
    assert raw.headers["content-type"] == "video/mpeg"
    assert "transfer-encoding" not in raw.headers
    start = b"\x00\x00\x01\xba" if fmt == "mpeg" else b"\x00\x00\x01\xb3"
    assert raw.body.startswith(start)
    # A sequence header at every GOP, so a client can join at any of them.
    assert raw.body.count(b"\x00\x00\x01\xb3") >= 1
    frames = decode_video(raw.body, fmt)
    assert 18 <= len(frames) <= 32
    codes = [read_block_code(f.to_ndarray(format="gray")) for f in frames]
    numbers = [c[0] for c in codes if c is not None]
    assert len(numbers) == len(frames)
    assert numbers == sorted(numbers)
    assert (frames[0].width, frames[0].height) == (320, 240)


async def test_mpeg2_gop_structure(fetch: Fetch) -> None:
    raw = await fetch("/axis-cgi/mpeg2/video.cgi?duration=2")
    assert raw.body.count(b"\x00\x00\x01\xb3") >= 2
    with av.open(io.BytesIO(raw.body), "r", format="mpegvideo") as container:
        # AVPictureType: 1 = I, 2 = P, 3 = B.
        types = ["-IPB"[int(f.pict_type)] for f in container.decode(video=0)]
    assert types[0] == "I"
    assert {"I", "P", "B"} <= set(types)
    gop = types[1:].index("I") + 1
    assert 12 <= gop <= 25


async def test_mpeg2_format_option_and_bad_format(raw: Fetch, fetch: Fetch) -> None:
    bad = await fetch("/axis-cgi/mpeg2/video.cgi?format=mp4")
    assert bad.status == 400
    server = SimServer(SimOptions(size=(160, 120), mpeg2_format="ps", fps=30))
    await server.start()
    try:
        response = await raw(server.url, "/axis-cgi/mpeg2/video.cgi?duration=1")
    finally:
        await server.stop()
    assert response.body.startswith(b"\x00\x00\x01\xba")
    assert 24 <= len(decode_video(response.body, "mpeg")) <= 36


def tone_peak(samples: np.ndarray[Any, np.dtype[Any]]) -> tuple[float, float]:
    """Return (peak frequency, fraction of energy within 50 Hz of it)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
    peak = float(freqs[int(np.argmax(spectrum))])
    near = spectrum[np.abs(freqs - peak) < 50].sum()
    return peak, float(near / spectrum.sum())


@pytest.mark.parametrize(
    ("codec", "content_type", "demuxer", "options"),
    [
        ("g726", "audio/32KADPCM", "g726", {"code_size": "4", "sample_rate": "8000"}),
        ("g726le", "audio/32KADPCM", "g726le", {"code_size": "4", "sample_rate": "8000"}),
        ("pcmu", "audio/basic", "mulaw", {"sample_rate": "8000"}),
    ],
)
async def test_audio_parts_decode_to_the_tone(
    fetch: Fetch, parts: Parts, codec: str, content_type: str, demuxer: str, options: dict[str, str]
) -> None:
    raw = await fetch(f"/axis-cgi/audio/receive.cgi?duration=1&codec={codec}")
    assert raw.headers["content-type"] == "multipart/x-mixed-replace;boundary=myboundary"
    found = parts(raw.body)
    # Real time: 64 ms parts for one second; no Content-Length in any part (§5.5.2).
    assert 13 <= len(found) <= 18
    assert all(p.headers == {"content-type": content_type} for p in found)
    data = b"".join(p.payload for p in found)
    with av.open(io.BytesIO(data), "r", format=demuxer, options=options) as container:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert abs(len(pcm) - 8000) < 1500
    peak, purity = tone_peak(pcm[400:4496].astype(np.float64))
    assert abs(peak - 1000) < 10
    assert purity > 0.9


async def test_audio_channels_have_distinct_tones(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch("/axis-cgi/audio/receive.cgi?duration=1&camera=3&codec=pcmu")
    data = b"".join(p.payload for p in parts(raw.body))
    with av.open(
        io.BytesIO(data), "r", format="mulaw", options={"sample_rate": "8000"}
    ) as container:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert abs(tone_peak(pcm[:4096].astype(np.float64))[0] - 1500) < 10


async def test_audio_getparam_counts_live_clients(sim: SimServer, fetch: Fetch) -> None:
    async def listen() -> Any:
        return await fetch("/axis-cgi/audio/receive.cgi?duration=1")

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.3)
    raw = await fetch("/axis-cgi/audio/getparam.cgi")
    await listener
    assert raw.headers["content-type"].startswith("text/plain")
    lines = raw.body.decode().split("\r\n")
    assert "root.Audioc.connectedClients=1" in lines
    assert lines[0] == "root.Audioc.duplexMode=half"
    assert raw.body.endswith(b"\r\n\r\n")
    after = await fetch("/axis-cgi/audio/getparam.cgi")
    assert b"root.Audioc.connectedClients=0\r\n" in after.body


async def test_audio_bad_codec(fetch: Fetch) -> None:
    raw = await fetch("/axis-cgi/audio/receive.cgi?codec=mp3")
    assert raw.status == 400
    assert raw.body.startswith(b"Error: codec must be")
