"""AudioDecoder quality: the simulator's tone decodes cleanly in the right bit order only.

Also the helpers the other audio tests share: the tone as parts, frames, SNR.
"""

from __future__ import annotations

import asyncio
import itertools
from fractions import Fraction

import aiohttp
import numpy as np
import numpy.typing as npt
import pytest

from gateway.config import AudioCodec
from gateway.demux.multipart import MultipartDemuxer, PartReceived
from gateway.media import Frame
from gateway.sim import SimOptions, SimServer
from gateway.sim.encoders import AUDIO_PART_SAMPLES, ToneProducer
from gateway.sim.encoders import AudioCodec as SimCodec
from gateway.sim.state import TONE_HZ
from gateway.transcode import AudioDecoder, PcmBlock

RATE = 8000
TIME_BASE = Fraction(1, RATE)
#: Samples skipped before measuring: the G.726 decoder's step size settles within ~100.
SETTLE = 256
#: The other G.726 packing.
WRONG_ORDER = {AudioCodec.G726: AudioCodec.G726LE, AudioCodec.G726LE: AudioCodec.G726}


def tone_parts(codec: SimCodec, count: int, frequency: float = TONE_HZ) -> list[bytes]:
    """Return count parts of the simulator's tone, encoded and cut as the simulator does."""
    producer = ToneProducer(codec, frequency)
    return [producer.produce(i, 0)[0].data for i in range(count)]


def part_frame(payload: bytes, seq: int, content_type: str = "audio/32KADPCM") -> Frame:
    """Return an audio Frame as ingest makes it (pts on the 8 kHz arrival clock)."""
    return Frame(
        payload,
        content_type,
        seq,
        seq * AUDIO_PART_SAMPLES,
        time_base=TIME_BASE,
        received_ns=1000 + seq,
    )


def snr_db(pcm: npt.NDArray[np.int16], frequency: float, *, skip: int = SETTLE) -> float:
    """Return the SNR of pcm against the best-fit sine (amplitude, phase, DC) at frequency."""
    x = pcm[skip:].astype(np.float64)
    n = np.arange(skip, skip + len(x))
    phase = 2 * np.pi * frequency * n / RATE
    basis = np.column_stack([np.sin(phase), np.cos(phase), np.ones(len(x))])
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    tone = basis[:, :2] @ coef[:2]
    noise = x - basis @ coef
    return float(10 * np.log10(np.sum(tone**2) / max(float(np.sum(noise**2)), 1e-9)))


async def decode_all(codec: AudioCodec, frames: list[Frame]) -> list[PcmBlock]:
    """Run frames through an AudioDecoder configured for codec; return the blocks."""
    blocks: list[PcmBlock] = []
    decoder = AudioDecoder(
        codec, blocks.append, loop=asyncio.get_running_loop(), max_pending=len(frames)
    )
    for frame in frames:
        decoder.submit(frame)
    await decoder.wait_idle()
    decoder.close()
    assert decoder.counters.decode_errors == 0
    return blocks


def joined(blocks: list[PcmBlock]) -> npt.NDArray[np.int16]:
    """Return the blocks' samples back to back."""
    return np.concatenate([b.samples for b in blocks])


@pytest.mark.parametrize("frequency", [TONE_HZ, TONE_HZ + 250, 440.0])
@pytest.mark.parametrize("sim_codec", [SimCodec.G726, SimCodec.G726LE])
async def test_g726_right_bit_order_is_clean_and_wrong_one_is_noise(
    sim_codec: SimCodec, frequency: float
) -> None:
    """Measured: right order 36-45 dB, wrong order -24..+10 dB (the issue expected 30 / 9)."""
    frames = [part_frame(p, i) for i, p in enumerate(tone_parts(sim_codec, 16, frequency))]
    right = AudioCodec(sim_codec.value)
    right_snr = snr_db(joined(await decode_all(right, frames)), frequency)
    wrong_snr = snr_db(joined(await decode_all(WRONG_ORDER[right], frames)), frequency)
    assert right_snr >= 25, (right_snr, wrong_snr)
    assert wrong_snr <= 15, (right_snr, wrong_snr)


@pytest.mark.parametrize("configured", list(AudioCodec))
async def test_mulaw_is_clean_whatever_the_configuration(configured: AudioCodec) -> None:
    """audio/basic parts are mu-law even when g726 is configured (measured 39 dB)."""
    frames = [part_frame(p, i, "audio/basic") for i, p in enumerate(tone_parts(SimCodec.PCMU, 16))]
    pcm = joined(await decode_all(configured, frames))
    assert len(pcm) == 16 * AUDIO_PART_SAMPLES
    assert snr_db(pcm, TONE_HZ) >= 35


async def fetch_audio(url: str) -> list[Frame]:
    """GET one second of multipart audio from the simulator; return its parts as frames."""
    frames: list[Frame] = []
    loop = asyncio.get_running_loop()
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"{url}/axis-cgi/audio/receive.cgi?duration=1") as resp,
    ):
        assert resp.status == 200
        demuxer = MultipartDemuxer(resp.headers["Content-Type"])
        async for chunk in resp.content.iter_any():
            events = demuxer.receive_data(chunk)
            received_ns = int(loop.time() * 1e9)
            for event in events:
                if isinstance(event, PartReceived):
                    frames.append(
                        Frame(
                            bytes(event.payload),
                            event.content_type,
                            len(frames),
                            received_ns * RATE // 1_000_000_000,
                            time_base=TIME_BASE,
                            received_ns=received_ns,
                        )
                    )
    return frames


@pytest.mark.parametrize("sim_codec", list(SimCodec))
async def test_simulator_audio_over_loopback_decodes_to_the_tone(sim_codec: SimCodec) -> None:
    """SimServer -> HTTP -> MultipartDemuxer -> AudioDecoder: the tone, continuous."""
    server = SimServer(SimOptions(size=(160, 120), audio_codec=sim_codec.value))
    await server.start()
    try:
        frames = await fetch_audio(server.url)
    finally:
        await server.stop()
    assert 10 <= len(frames) <= 20
    assert {f.content_type for f in frames} == {sim_codec.content_type}
    # The configuration names the camera's G.726 packing; mu-law needs no configuration.
    configured = AudioCodec.G726 if sim_codec is SimCodec.PCMU else AudioCodec(sim_codec.value)
    blocks = await decode_all(configured, frames)
    assert [b.seq for b in blocks] == list(range(len(frames)))
    assert not any(b.discontinuity for b in blocks)
    for before, after in itertools.pairwise(blocks):
        assert after.pts == before.pts + len(before.samples)
    assert snr_db(joined(blocks), TONE_HZ) >= 25
