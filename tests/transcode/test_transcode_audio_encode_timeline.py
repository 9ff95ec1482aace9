"""AudioEncodePipeline timeline: gaps, silence fill, backward jumps, bounds, errors."""

from __future__ import annotations

from typing import Any

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.transcode.audio import PcmBlock
from gateway.transcode.audio_codecs import AudioEncoding, EncodedAudio
from gateway.transcode.audio_encode import AudioEncodePipeline
from tests.transcode.audio_encode_helpers import (
    PART,
    RATE_IN,
    assert_continuous,
    assert_monotonic,
    blocks,
    decode,
    feed_all,
    lag,
    noise,
    tone,
)

AAC, OPUS = AudioEncoding.AAC, AudioEncoding.OPUS
#: Output samples per input sample at 48 kHz.
RATIO = 48000 // RATE_IN
FRAME = {AAC: 1024, OPUS: 2880}
START = 40_000


def split(packets: list[EncodedAudio]) -> list[list[EncodedAudio]]:
    """Return the packets cut into runs of continuous pts."""
    runs: list[list[EncodedAudio]] = []
    for packet in packets:
        if packet.discontinuity:
            runs.append([])
        runs[-1].append(packet)
    return runs


@pytest.mark.parametrize("encoding", list(AudioEncoding))
def test_a_one_second_hole_is_a_one_second_pts_jump(encoding: AudioEncoding) -> None:
    """Same durations before and after, each side lines up with its input: a gap, no drift."""
    pipeline = AudioEncodePipeline(encoding)
    before, after = noise(START, 10 * PART), noise(START + 10 * PART + RATE_IN, 10 * PART)
    resume = START + 10 * PART + RATE_IN
    packets = feed_all(pipeline, blocks(before, START))
    packets += feed_all(pipeline, blocks(after, resume, discontinuity=True))
    silence = pipeline.counters.silence_samples
    packets += pipeline.flush()
    assert_monotonic(packets)
    first, second = split(packets)
    frame = FRAME[encoding]
    assert {p.duration for p in first} == {frame}
    assert {p.duration for p in second[:-1]} == {frame}
    assert first[0].pts == START * RATIO - pipeline.config.priming
    # The piece before the hole ends padded to a packet boundary, less than a frame on.
    padding = first[-1].pts + frame - (START + len(before)) * RATIO
    assert 0 <= padding < frame
    assert second[0].pts == resume * RATIO  # exactly where the input says
    assert second[0].pts - (first[-1].pts + frame) == RATE_IN * RATIO - padding
    assert pipeline.counters.discontinuities == 1
    assert silence == padding
    decoded = decode(pipeline.config, encoding, packets)
    assert lag(decoded.at(START * RATIO, len(before) * RATIO), before, RATIO) == 0
    assert lag(decoded.at(resume * RATIO, len(after) * RATIO), after, RATIO) == 0


@pytest.mark.parametrize("encoding", list(AudioEncoding))
@pytest.mark.parametrize("hole", [0, 1, 40, 150])  # 150: 900 output samples
def test_a_short_hole_is_filled_with_silence(encoding: AudioEncoding, hole: int) -> None:
    """Shorter than about a frame: no jump, and the audio after it still lines up."""
    pipeline = AudioEncodePipeline(encoding)
    resume = START + 4 * PART + hole
    after = noise(resume, 8 * PART)
    packets = feed_all(pipeline, blocks(noise(START, 4 * PART), START))
    packets += feed_all(pipeline, blocks(after, resume, discontinuity=True))
    packets += pipeline.flush()
    assert_continuous(packets)
    assert pipeline.counters.discontinuities == 1
    assert pipeline.counters.silence_samples >= hole * RATIO
    decoded = decode(pipeline.config, encoding, packets)
    assert lag(decoded.at(resume * RATIO, len(after) * RATIO), after, RATIO) == 0


@pytest.mark.parametrize("flagged", [True, False])
def test_a_backward_jump_stays_monotonic(flagged: bool) -> None:
    """A camera clock behind ours (flagged or not): re-anchored right after the last packet."""
    pipeline = AudioEncodePipeline(AAC)
    packets = feed_all(pipeline, blocks(tone(440.0, START, 6 * PART), START))
    for back in (START - 3000, START - 3000, 5):  # twice the same pts, then far back
        packets += feed_all(
            pipeline, blocks(tone(440.0, back, 6 * PART), back, discontinuity=flagged)
        )
    packets += pipeline.flush()
    assert_monotonic(packets)
    assert_continuous(packets)  # re-anchored exactly at the end of the padded piece
    assert pipeline.counters.discontinuities == 3
    decode(pipeline.config, AAC, packets)


@pytest.mark.parametrize("encoding", list(AudioEncoding))
def test_fill_until_keeps_the_track_advancing_with_silence(encoding: AudioEncoding) -> None:
    pipeline = AudioEncodePipeline(encoding)
    assert pipeline.fill_until(START) == []  # nothing to continue yet
    packets = feed_all(pipeline, blocks(tone(1000.0, START, 8 * PART), START))
    end = START + 8 * PART
    assert pipeline.next_pts == end
    assert pipeline.fill_until(end) == []  # not ahead
    filled: list[EncodedAudio] = []
    for target in range(end + 400, end + RATE_IN + 1, 400):  # a caller's timer, 50 ms apart
        filled += pipeline.fill_until(target, received_ns=target)
    assert filled
    assert pipeline.counters.silence_samples == RATE_IN * RATIO
    assert pipeline.next_pts == end + RATE_IN
    resume = end + RATE_IN
    after = noise(resume, 8 * PART)
    packets += filled + feed_all(pipeline, blocks(after, resume, discontinuity=True))
    assert pipeline.counters.silence_samples == RATE_IN * RATIO  # the resume needed none
    packets += pipeline.flush()
    assert_continuous(packets)
    decoded = decode(pipeline.config, encoding, packets)
    # The tone fades out within a few ms; then silence, then the new audio in its place.
    quiet = decoded.at((end + 80) * RATIO, (RATE_IN - 160) * RATIO)
    assert np.max(np.abs(quiet)) < 100
    assert lag(decoded.at(resume * RATIO, len(after) * RATIO), after, RATIO) == 0


def test_fill_until_past_the_bound_restarts_the_timeline() -> None:
    pipeline = AudioEncodePipeline(AAC, max_gap_samples=2 * RATE_IN)
    packets = feed_all(pipeline, blocks(tone(440.0, START, 4 * PART), START))
    end = START + 4 * PART
    for k in range(1, 200):  # far beyond the bound, many times: nothing piles up
        packets += pipeline.fill_until(end + k * 3 * RATE_IN)
    assert pipeline.counters.silence_samples < 2 * FRAME[AAC]
    assert len(pipeline._segments) <= 2
    target = end + 199 * 3 * RATE_IN
    assert pipeline.next_pts == target
    # The camera comes back somewhat later: a jump there, not ten minutes of silence.
    resume = target + 5 * RATE_IN
    packets += feed_all(pipeline, blocks(tone(440.0, resume, 4 * PART), resume, discontinuity=True))
    assert_monotonic(packets)
    _, second = split(packets)
    assert second[0].pts == resume * RATIO
    assert pipeline.counters.silence_samples < 2 * FRAME[AAC]


def test_fill_until_after_a_backward_jump_waits_for_the_output() -> None:
    pipeline = AudioEncodePipeline(OPUS)
    feed_all(pipeline, blocks(tone(440.0, START, 8 * PART), START))
    back = START - 4 * PART
    feed_all(pipeline, blocks(tone(440.0, back, PART), back, discontinuity=True))
    # The output runs past START + 8 parts already: nothing to fill before that.
    assert pipeline.fill_until(START + 8 * PART) == []
    assert pipeline.counters.silence_samples < FRAME[OPUS]


def test_an_oversized_block_is_dropped_and_the_hole_handled() -> None:
    pipeline = AudioEncodePipeline(AAC, max_block_samples=4 * PART)
    signal = tone(440.0, START, 12 * PART)
    big, rest = blocks(signal, START, size=8 * PART)
    assert pipeline.feed(big) == []
    assert pipeline.counters.errors == 1
    assert pipeline.counters.last_error == f"audio block of {8 * PART} samples"
    packets = feed_all(pipeline, blocks(signal[8 * PART :], rest.pts))
    assert_continuous(packets)
    assert packets[0].pts == rest.pts * RATIO - 1024


def test_absurd_pts_jumps_cost_nothing() -> None:
    pipeline = AudioEncodePipeline(OPUS)
    packets = feed_all(pipeline, blocks(tone(440.0, 0, 4 * PART), 0))
    for pts in (2**40, 2**62, 2**62 + 7):
        packets += feed_all(pipeline, blocks(tone(440.0, pts, 4 * PART), pts))
        packets += pipeline.fill_until(pts + 8 * PART)
    packets += pipeline.flush()
    assert_monotonic(packets)
    assert packets[-1].pts > 2**62 * RATIO
    assert pipeline.counters.silence_samples < 8 * RATE_IN * RATIO


class Failing:
    """Stands in for the encoder once: every call raises what FFmpeg raises."""

    frame_size = 1024

    def encode(self, frame: av.AudioFrame | None) -> list[av.Packet[Any]]:
        raise av.FFmpegError(-22, "Invalid argument")


def test_an_encoder_error_reopens_it_after_the_last_packet() -> None:
    pipeline = AudioEncodePipeline(AAC)
    signal = tone(440.0, START, 16 * PART)
    pcm = blocks(signal, START)
    packets = feed_all(pipeline, pcm[:8])
    pipeline._encoder = Failing()  # type: ignore[assignment]
    packets += pipeline.feed(pcm[8])
    assert pipeline.counters.errors == 1
    assert pipeline.counters.last_error == "FFmpegError: [Errno -22] Invalid argument"
    # The new encoder primes again; its first packet starts after the last one out.
    packets += feed_all(pipeline, pcm[9:]) + pipeline.flush()
    assert_monotonic(packets)
    first, second = split(packets)
    assert second[0].pts >= first[-1].pts + 1024
    decode(pipeline.config, AAC, packets)


OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("feed"),
            st.integers(-3000, 30_000),  # pts change beyond the previous block's end
            st.integers(0, 1500),  # samples
            st.booleans(),  # discontinuity flag
        ),
        st.tuples(st.just("fill"), st.integers(-2000, 30_000), st.just(0), st.just(False)),
    ),
    max_size=25,
)


@settings(max_examples=100, deadline=None)
@given(encoding=st.sampled_from(list(AudioEncoding)), ops=OPS)
def test_any_sequence_gives_monotonic_decodable_packets(
    encoding: AudioEncoding, ops: list[tuple[str, int, int, bool]]
) -> None:
    pipeline = AudioEncodePipeline(encoding, max_gap_samples=RATE_IN)
    packets: list[EncodedAudio] = []
    pts = 1000
    for op, delta, count, flagged in ops:
        pts = max(0, pts + delta)
        if op == "fill":
            packets += pipeline.fill_until(pts)
            continue
        samples = np.full(count, 1000, np.int16)
        packets += pipeline.feed(PcmBlock(samples, pts, 0, 0, discontinuity=flagged))
        pts += count
    packets += pipeline.flush()
    assert pipeline.counters.errors == 0
    assert all(p.duration > 0 for p in packets)
    if packets:
        assert_monotonic(packets)
        decode(pipeline.config, encoding, packets)
