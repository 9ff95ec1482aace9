"""AudioDecoder: codec table, continuity, discontinuities, overload, errors, threads, close."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from fractions import Fraction

import av
import numpy as np
import pytest

from gateway.config import AudioCodec
from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.sim.encoders import AUDIO_PART_SAMPLES
from gateway.sim.encoders import AudioCodec as SimCodec
from gateway.transcode import AudioDecoder, PcmBlock, PyAvDecoder, codec_for
from gateway.transcode.audio import _CONTENT_TYPES, _DECODERS, Samples
from tests.transcode.test_transcode_audio_snr import part_frame, tone_parts

G726, G726LE, PCMU = AudioCodec.G726, AudioCodec.G726LE, AudioCodec.PCMU

#: (content type, configured codec, codec decoded): one row per table entry and rule.
CODEC_TABLE = [
    ("audio/32KADPCM", G726, G726),
    ("audio/32KADPCM", G726LE, G726LE),
    ("audio/32KADPCM", PCMU, G726),  # the type says G.726; pcmu names no bit order
    ("audio/basic", G726, PCMU),
    ("audio/basic", G726LE, PCMU),
    ("audio/basic", PCMU, PCMU),
    ("audio/PCMU", G726, PCMU),
    ("audio/G726-32", G726, G726LE),  # RFC 3551 §4.5.4: LSB-first
    ("audio/AAL2-G726-32", G726LE, G726),  # I.366.2 Annex E: MSB-first
    ("Audio/Basic; rate=8000", G726, PCMU),  # case and parameters do not matter
]


@pytest.mark.parametrize(("content_type", "configured", "expected"), CODEC_TABLE)
def test_codec_for(content_type: str, configured: AudioCodec, expected: AudioCodec) -> None:
    assert codec_for(content_type, configured) is expected


def test_codec_table_entries_all_tested() -> None:
    tested = {ct.partition(";")[0].lower() for ct, _, _ in CODEC_TABLE}
    assert tested == set(_CONTENT_TYPES)
    assert set(_DECODERS) == set(AudioCodec)


@pytest.mark.parametrize("content_type", ["image/jpeg", "audio/mpeg", ""])
def test_codec_for_rejects_other_types(content_type: str) -> None:
    with pytest.raises(RemoteProtocolError, match="not a camera audio type"):
        codec_for(content_type, G726)


@pytest.mark.parametrize(("codec", "loud"), [(G726, 0), (G726LE, 1)])
def test_ffmpeg_g726_reads_msb_first_and_g726le_lsb_first(codec: AudioCodec, loud: int) -> None:
    """Code word 7 (largest positive) in the high nibble of the first octet, then zeros."""
    samples = PyAvDecoder(codec).decode(bytes([0x70, 0, 0, 0]))
    assert len(samples) == 8
    assert samples[loud] > 50
    assert abs(int(samples[1 - loud])) < 20


def test_pcmu_decoder_is_mu_law() -> None:
    # G.711 mu-law: 0xFF and 0x7F are the two zeros, 0x80 / 0x00 the extremes.
    samples = PyAvDecoder(PCMU).decode(bytes([0xFF, 0x7F, 0x80, 0x00]))
    assert samples.tolist() == [0, 0, 32124, -32124]


class Sink:
    """on_pcm target recording blocks and the thread each was delivered on."""

    def __init__(self) -> None:
        self.blocks: list[PcmBlock] = []
        self.threads: set[int] = set()

    def __call__(self, block: PcmBlock) -> None:
        self.threads.add(threading.get_ident())
        self.blocks.append(block)


class Gated:
    """A decoder factory whose decoders wait for the test to open the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.opened: list[AudioCodec] = []
        self.threads: set[int] = set()

    def __call__(self, codec: AudioCodec) -> Gated.Decoder:
        self.opened.append(codec)
        return Gated.Decoder(self, PyAvDecoder(codec))

    class Decoder:
        def __init__(self, owner: Gated, inner: PyAvDecoder) -> None:
            self._owner, self._inner = owner, inner

        def decode(self, data: bytes) -> Samples:
            self._owner.threads.add(threading.get_ident())
            assert self._owner.gate.wait(10)
            return self._inner.decode(data)


def make(sink: Sink, **kwargs: object) -> AudioDecoder:
    return AudioDecoder(G726, sink, loop=asyncio.get_running_loop(), **kwargs)  # type: ignore[arg-type]


PARTS = tone_parts(SimCodec.G726, 8)


async def test_blocks_are_continuous_in_order_on_the_loop_thread() -> None:
    sink, gated = Sink(), Gated()
    decoder = make(sink, decoder_factory=gated)
    for seq, payload in enumerate(PARTS):
        decoder.submit(part_frame(payload, seq))
    assert decoder.parts_held == len(PARTS)
    gated.gate.set()
    await decoder.wait_idle()
    assert decoder.parts_held == 0
    assert [b.seq for b in sink.blocks] == list(range(len(PARTS)))
    assert sink.threads == {threading.get_ident()}
    assert gated.threads
    assert threading.get_ident() not in gated.threads
    assert gated.opened == [G726]  # one decoder state for the whole run
    first = sink.blocks[0]
    assert first.pts == 0
    assert first.sample_rate == 8000
    assert not first.discontinuity
    for before, after in itertools.pairwise(sink.blocks):
        assert after.pts == before.pts + len(before.samples)
        assert not after.discontinuity
    assert all(len(b.samples) == AUDIO_PART_SAMPLES for b in sink.blocks)
    assert all(b.samples.dtype == np.int16 and not b.samples.flags.writeable for b in sink.blocks)
    assert [b.received_ns for b in sink.blocks] == [1000 + s for s in range(len(PARTS))]
    assert decoder.counters.samples_out == len(PARTS) * AUDIO_PART_SAMPLES
    decoder.close()


async def test_first_block_takes_its_pts_from_the_arrival_clock() -> None:
    sink = Sink()
    decoder = make(sink)
    decoder.submit(part_frame(PARTS[0], 5))  # pts 5 * 512 on the 8 kHz clock
    await decoder.wait_idle()
    assert sink.blocks[0].pts == 5 * AUDIO_PART_SAMPLES
    assert sink.blocks[0].time_base == Fraction(1, 8000)
    decoder.close()


async def test_seq_gap_flags_a_discontinuity_and_resets_the_decoder() -> None:
    sink, factory = Sink(), Gated()
    factory.gate.set()
    decoder = make(sink, decoder_factory=factory)
    for seq in (0, 1, 4, 5):
        decoder.submit(part_frame(PARTS[seq], seq))
    await decoder.wait_idle()
    assert [b.discontinuity for b in sink.blocks] == [False, False, True, False]
    # After the hole the timeline re-anchors on the arrival clock: the lost time stays lost.
    assert [b.pts for b in sink.blocks] == [0, 512, 4 * 512, 5 * 512]
    assert factory.opened == [G726, G726]
    assert decoder.counters.discontinuities == 1
    decoder.close()


async def test_overload_drops_the_oldest_pending_and_resets() -> None:
    sink, gated = Sink(), Gated()
    decoder = make(sink, decoder_factory=gated, max_pending=2)
    for seq in range(5):  # 0 in the worker; 1 and 2 pushed out by 3 and 4
        decoder.submit(part_frame(PARTS[seq], seq))
    assert decoder.parts_held == 3
    assert decoder.counters.parts_dropped == 2
    gated.gate.set()
    await decoder.wait_idle()
    assert [b.seq for b in sink.blocks] == [0, 3, 4]
    assert [b.discontinuity for b in sink.blocks] == [False, True, False]
    assert [b.pts for b in sink.blocks] == [0, 3 * 512, 4 * 512]
    assert gated.opened == [G726, G726]
    snapshot = decoder.counters.snapshot()
    assert (snapshot["parts_in"], snapshot["parts_dropped"]) == (5, 2)
    assert (snapshot["blocks_out"], snapshot["samples_out"]) == (3, 3 * 512)
    json.dumps(snapshot)
    decoder.close()


async def test_overload_reset_applies_even_without_a_seq_gap() -> None:
    # Parts renumbered gap-free: the drop alone must still reset and flag.
    sink, gated = Sink(), Gated()
    decoder = make(sink, decoder_factory=gated, max_pending=1)
    decoder.submit(part_frame(PARTS[0], 0))
    decoder.submit(part_frame(PARTS[1], 1))
    decoder.submit(part_frame(PARTS[2], 1))  # pushes out the first seq 1
    gated.gate.set()
    await decoder.wait_idle()
    assert [b.discontinuity for b in sink.blocks] == [False, True]
    assert gated.opened == [G726, G726]
    decoder.close()


async def test_garbage_parts_count_errors_and_decoding_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Sink()
    decoder = make(sink, max_part_bytes=1024)
    decoder.submit(part_frame(PARTS[0], 0))
    decoder.submit(part_frame(b"<html>oops</html>", 1, "text/html"))
    decoder.submit(part_frame(PARTS[2], 2))
    decoder.submit(part_frame(b"", 3))
    decoder.submit(part_frame(PARTS[4], 4))
    decoder.submit(part_frame(bytes(1025), 5))
    decoder.submit(part_frame(PARTS[6], 6))
    await decoder.wait_idle()
    assert [b.seq for b in sink.blocks] == [0, 2, 4, 6]
    assert [b.discontinuity for b in sink.blocks] == [False, True, True, True]
    assert decoder.counters.decode_errors == 3
    assert decoder.counters.last_error == "audio part of 1025 bytes"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    decoder.close()


async def test_decoder_failures_are_counted_and_the_next_part_starts_afresh(
    caplog: pytest.LogCaptureFixture,
) -> None:
    opened: list[AudioCodec] = []

    class Flaky:
        def decode(self, data: bytes) -> Samples:
            if data == b"\x01":
                raise av.InvalidDataError(1094995529, "invalid data")
            if data == b"\x02":
                raise ValueError("decoder bug")
            return np.zeros(2 * len(data), np.int16)

    def factory(codec: AudioCodec) -> Flaky:
        opened.append(codec)
        return Flaky()

    sink = Sink()
    decoder = make(sink, decoder_factory=factory)
    for seq, payload in enumerate([b"ok", b"\x01", b"ok", b"\x02", b"ok"]):
        decoder.submit(part_frame(payload, seq))
    await decoder.wait_idle()
    assert [b.seq for b in sink.blocks] == [0, 2, 4]
    assert decoder.counters.decode_errors == 2
    assert decoder.counters.last_error == "ValueError: decoder bug"
    assert len(opened) == 3  # every failure drops the decoder state
    # A bug (not bad data) is logged as an error, once.
    assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == [logging.ERROR]
    decoder.close()


async def test_content_type_switch_changes_codec_with_a_discontinuity() -> None:
    sink = Sink()
    decoder = make(sink)
    mulaw = tone_parts(SimCodec.PCMU, 1)[0]
    decoder.submit(part_frame(PARTS[0], 0))
    decoder.submit(part_frame(mulaw, 1, "audio/basic"))
    await decoder.wait_idle()
    assert [b.discontinuity for b in sink.blocks] == [False, True]
    assert [len(b.samples) for b in sink.blocks] == [512, 512]
    decoder.close()


async def test_close_drops_pending_and_wait_idle_waits_for_the_worker() -> None:
    sink, gated = Sink(), Gated()
    decoder = make(sink, decoder_factory=gated)
    for seq in range(3):
        decoder.submit(part_frame(PARTS[seq], seq))
    decoder.close()
    decoder.close()  # idempotent
    assert decoder.closed
    assert decoder.counters.parts_dropped == 2
    with pytest.raises(LocalProtocolError, match="closed"):
        decoder.submit(part_frame(PARTS[3], 3))
    waiting = asyncio.ensure_future(decoder.wait_idle())
    await asyncio.sleep(0)
    assert not waiting.done()  # the worker is still inside part 0
    gated.gate.set()
    await waiting
    assert decoder.parts_held == 0
    assert sink.blocks == []  # nothing is delivered after close


async def test_wait_idle_cancelled_does_not_disturb_the_decoder() -> None:
    sink, gated = Sink(), Gated()
    decoder = make(sink, decoder_factory=gated)
    decoder.submit(part_frame(PARTS[0], 0))
    waiting = asyncio.ensure_future(decoder.wait_idle())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gated.gate.set()
    await decoder.wait_idle()
    assert [b.seq for b in sink.blocks] == [0]
    decoder.close()


async def test_bounds_are_checked() -> None:
    with pytest.raises(LocalProtocolError):
        make(Sink(), max_pending=0)
    with pytest.raises(LocalProtocolError):
        make(Sink(), max_part_bytes=0)
    with pytest.raises(LocalProtocolError):
        make(Sink(), max_listeners=0)


async def test_several_listeners_share_the_blocks_past_a_failing_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    meter, aac, opus = Sink(), Sink(), Sink()

    def broken(block: PcmBlock) -> None:
        raise RuntimeError("encoder bug")

    decoder = make(meter)  # the constructor's on_pcm is the first listener
    decoder.add_listener(broken)
    remove_aac = decoder.add_listener(aac)
    decoder.add_listener(opus)
    for seq in range(2):
        decoder.submit(part_frame(PARTS[seq], seq))
    await decoder.wait_idle()
    remove_aac()
    decoder.submit(part_frame(PARTS[2], 2))
    await decoder.wait_idle()
    assert [b.seq for b in meter.blocks] == [b.seq for b in opus.blocks] == [0, 1, 2]
    assert [b.seq for b in aac.blocks] == [0, 1]
    assert meter.blocks[0] is aac.blocks[0] is opus.blocks[0]  # one block, shared
    assert meter.threads == opus.threads == {threading.get_ident()}
    assert (decoder.listeners.errors, decoder.listeners.last_error) == (
        3,
        "RuntimeError: encoder bug",
    )
    assert decoder.counters.blocks_out == 3  # a failing listener does not undo delivery
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 3
    decoder.close()
    await decoder.wait_idle()


async def test_a_decoder_without_on_pcm_decodes_for_later_listeners() -> None:
    decoder = AudioDecoder(G726, loop=asyncio.get_running_loop())
    decoder.submit(part_frame(PARTS[0], 0))
    await decoder.wait_idle()
    sink = Sink()
    decoder.add_listener(sink)
    decoder.submit(part_frame(PARTS[1], 1))
    await decoder.wait_idle()
    assert [b.seq for b in sink.blocks] == [1]
    assert decoder.counters.blocks_out == 2
    decoder.close()
    await decoder.wait_idle()
