"""AudioEncodePipeline: config, tone and timing through a real decoder, block sizes, G.726 in."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gateway.config import AudioCodec
from gateway.errors import LocalProtocolError
from gateway.sim.encoders import AudioCodec as SimCodec
from gateway.sim.encoders import ToneProducer
from gateway.sim.state import TONE_HZ
from gateway.transcode import PyAvDecoder
from gateway.transcode.audio import PcmBlock
from gateway.transcode.audio_codecs import CODEC_SPECS, AudioEncoding, EncodedAudio
from gateway.transcode.audio_encode import AudioEncodePipeline
from tests.transcode.audio_encode_helpers import (
    PART,
    RATE_IN,
    assert_continuous,
    blocks,
    decode,
    dominant_hz,
    feed_all,
    lag,
    noise,
    tone,
)

AAC, OPUS = AudioEncoding.AAC, AudioEncoding.OPUS
#: (encoding, output rate, frame size): every rendition and AAC's cheaper rate.
RENDITIONS = [(AAC, 48000, 1024), (AAC, 16000, 1024), (OPUS, 48000, 2880)]
#: An input pts far from zero, so a mapping that ignores it shows.
START = 123_456


def test_spec_table_entries_all_tested() -> None:
    assert set(CODEC_SPECS) == {encoding for encoding, _, _ in RENDITIONS}


def test_aac_config_is_lc_mono_48k_from_the_encoder() -> None:
    config = AudioEncodePipeline(AAC).config
    assert (config.codec, config.sample_rate, config.channels) == ("mp4a.40.2", 48000, 1)
    assert (config.priming, config.bit_rate, config.input_sample_rate) == (1024, 48000, 8000)
    asc = config.extradata
    # ISO/IEC 14496-3 §1.6.2.1: 5 bits object type (2 = LC), 4 bits rate index (3 = 48 kHz),
    # 4 bits channel configuration, then FFmpeg's explicit "no SBR" sync extension.
    assert asc[0] >> 3 == 2
    assert (asc[0] & 7) << 1 | asc[1] >> 7 == 3
    assert asc[1] >> 3 & 15 == 1
    assert asc[2:] == bytes.fromhex("56e500")


def test_aac_16k_config() -> None:
    config = AudioEncodePipeline(AAC, sample_rate=16000, bit_rate=24000).config
    assert (config.sample_rate, config.bit_rate) == (16000, 24000)
    assert (config.extradata[0] & 7) << 1 | config.extradata[1] >> 7 == 8


def test_opus_config_is_an_opushead_with_the_camera_rate() -> None:
    config = AudioEncodePipeline(OPUS).config
    assert (config.codec, config.sample_rate, config.channels) == ("opus", 48000, 1)
    head = config.extradata
    # RFC 7845 §5.1: magic, version 1, channels, pre-skip, input rate, gain, mapping family.
    assert len(head) == 19
    assert head[:10] == b"OpusHead\x01\x01"
    assert int.from_bytes(head[10:12], "little") == config.priming == 120  # lowdelay: 2.5 ms
    assert int.from_bytes(head[12:16], "little") == 8000
    assert head[16:] == b"\x00\x00\x00"
    assert config.bit_rate == 32000


@pytest.mark.parametrize(
    ("encoding", "kwargs"),
    [
        (AAC, {"sample_rate": 44100}),  # not a multiple of 8 kHz
        (OPUS, {"sample_rate": 16000}),  # RTP Opus is 48 kHz
        (AAC, {"max_block_samples": 0}),
        (OPUS, {"max_gap_samples": 0}),
    ],
)
def test_bad_construction_is_refused(encoding: AudioEncoding, kwargs: dict[str, int]) -> None:
    with pytest.raises(LocalProtocolError):
        AudioEncodePipeline(encoding, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("frequency", [440.0, 1000.0])
@pytest.mark.parametrize(("encoding", "rate", "frame"), RENDITIONS)
def test_tone_decodes_to_its_frequency_on_a_continuous_timeline(
    encoding: AudioEncoding, rate: int, frame: int, frequency: float
) -> None:
    pipeline = AudioEncodePipeline(encoding, sample_rate=rate)
    ratio = rate // RATE_IN
    count = 16 * PART  # 1.024 s
    packets = feed_all(pipeline, blocks(tone(frequency, START, count), START))
    packets += pipeline.flush()
    assert_continuous(packets)
    assert {p.sample_rate for p in packets} == {rate}
    assert all(p.duration == frame for p in packets[:-1])
    # Priming included: the first packet starts that much before the input.
    assert packets[0].pts == START * ratio - pipeline.config.priming
    covered = sum(p.duration for p in packets) - pipeline.config.priming
    assert 0 <= covered - count * ratio < frame
    decoded = decode(pipeline.config, encoding, packets)  # raises on any decode error
    assert decoded.lengths[1:-1] == [frame] * (len(packets) - 2)
    body = decoded.at(START * ratio + rate // 10, rate // 2)
    assert abs(dominant_hz(body, rate) - frequency) <= 2 * rate / len(body)
    level = np.sqrt(np.mean(body**2)) / (0.4 * 32767 / np.sqrt(2))
    assert 0.8 < level < 1.25
    assert pipeline.counters.errors == 0


@pytest.mark.parametrize(("encoding", "rate", "frame"), RENDITIONS)
def test_decoded_audio_lines_up_with_the_input_pts(
    encoding: AudioEncoding, rate: int, frame: int
) -> None:
    """Packet pts include the priming: placed at its pts, decoded audio has zero lag."""
    pipeline = AudioEncodePipeline(encoding, sample_rate=rate)
    ratio = rate // RATE_IN
    signal = noise(START, 8 * PART)
    packets = feed_all(pipeline, blocks(signal, START)) + pipeline.flush()
    decoded = decode(pipeline.config, encoding, packets)
    assert lag(decoded.at(START * ratio, len(signal) * ratio), signal, ratio) == 0


@pytest.mark.parametrize("encoding", list(AudioEncoding))
def test_block_size_does_not_change_the_packets(encoding: AudioEncoding) -> None:
    """333-sample blocks (and one long block) give exactly the 512-sample packets."""
    signal = tone(440.0, START, 20 * PART)

    def run(size: int) -> list[EncodedAudio]:
        pipeline = AudioEncodePipeline(encoding)
        packets = feed_all(pipeline, blocks(signal, START, size=size)) + pipeline.flush()
        assert pipeline.counters.discontinuities == 0
        assert pipeline.counters.samples_in == len(signal)
        return packets

    reference = run(PART)
    assert_continuous(reference)
    for size in (333, 7, len(signal)):
        packets = run(size)
        strip = [(p.payload, p.pts, p.duration) for p in packets]
        assert strip == [(p.payload, p.pts, p.duration) for p in reference], size


@pytest.mark.parametrize("encoding", list(AudioEncoding))
def test_simulator_g726_through_the_decoder_and_encoder_is_the_tone(
    encoding: AudioEncoding,
) -> None:
    """gateway.sim G.726 parts -> PyAvDecoder -> pipeline -> FFmpeg decode: the sim's tone."""
    producer = ToneProducer(SimCodec.G726, TONE_HZ)
    decoder = PyAvDecoder(AudioCodec.G726)
    pipeline = AudioEncodePipeline(encoding)
    packets: list[EncodedAudio] = []
    pts = START
    for seq in range(16):
        samples = decoder.decode(producer.produce(seq, 0)[0].data)
        packets += pipeline.feed(PcmBlock(samples, pts, received_ns=seq, seq=seq))
        pts += len(samples)
    packets += pipeline.flush()
    assert pts - START == 16 * PART
    assert_continuous(packets)
    rate = pipeline.config.sample_rate
    decoded = decode(pipeline.config, encoding, packets)
    body = decoded.at(START * 6 + rate // 10, rate // 2)
    assert abs(dominant_hz(body, rate) - TONE_HZ) <= 2 * rate / len(body)


def test_packets_carry_the_received_ns_of_the_block_that_completed_them() -> None:
    pipeline = AudioEncodePipeline(OPUS)
    pcm = blocks(tone(440.0, 0, 4 * PART), 0)
    for block in pcm:
        assert {p.received_ns for p in pipeline.feed(block)} <= {block.received_ns}
    assert {p.received_ns for p in pipeline.fill_until(5 * PART, received_ns=77)} == {77}


def test_counters_and_encode_time() -> None:
    ticks = iter(range(0, 10**9, 1000))
    pipeline = AudioEncodePipeline(AAC, clock=lambda: next(ticks))
    packets = feed_all(pipeline, blocks(tone(440.0, 0, 8 * PART), 0))
    snapshot = pipeline.counters.snapshot()
    json.dumps(snapshot)
    assert snapshot["blocks_in"] == 8
    assert snapshot["samples_in"] == 8 * PART
    assert snapshot["packets_out"] == len(packets) > 0
    assert snapshot["bytes_out"] == sum(len(p.payload) for p in packets)
    assert (snapshot["silence_samples"], snapshot["discontinuities"]) == (0, 0)
    assert (snapshot["errors"], snapshot["last_error"]) == (0, None)
    assert snapshot["encode_seconds_total"] == 8 * 1000 / 1e9  # one tick per feed
    assert snapshot["encode_ms_per_audio_second"] == round(8e-3 / (8 * PART / 8000), 3)


@pytest.mark.parametrize(
    "samples",
    [np.zeros(4, np.float32), np.zeros((2, 4), np.int16)],
)
def test_non_pcm_blocks_are_a_caller_error(samples: np.typing.NDArray[np.generic]) -> None:
    pipeline = AudioEncodePipeline(AAC)
    with pytest.raises(LocalProtocolError, match="mono int16"):
        pipeline.feed(PcmBlock(samples, 0, 0, 0))  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="mono int16"):
        pipeline.feed(PcmBlock(np.zeros(4, np.int16), 0, 0, 0, sample_rate=16000))
    assert pipeline.counters.blocks_in == 0


def test_flush_closes_the_pipeline() -> None:
    pipeline = AudioEncodePipeline(OPUS)
    assert pipeline.flush() == []  # nothing fed: nothing held
    with pytest.raises(LocalProtocolError, match="flushed"):
        pipeline.feed(blocks(tone(440.0, 0, PART), 0)[0])
    with pytest.raises(LocalProtocolError, match="flushed"):
        pipeline.fill_until(PART)
    with pytest.raises(LocalProtocolError, match="flushed"):
        pipeline.flush()
