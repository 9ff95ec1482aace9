"""ClientTally: totals that survive readers leaving, keys by output and stream, lag buckets."""

from __future__ import annotations

from gateway.hub import LAG_BUCKETS_S, ClientTally, Ring, Stream, every_frame
from gateway.hub.tally import LagBuckets, Totals, output_of
from gateway.media import NS_PER_SECOND, StreamKind
from tests.hub.test_hub_ring import Source
from tests.hub.test_hub_stream import frame


def test_totals_keep_what_a_subscriber_was_handed_after_it_leaves() -> None:
    tally = ClientTally()
    stream = Stream(StreamKind.MJPEG, tally=tally)
    with stream.subscribe(kind="mjpeg") as sub:
        for i in range(5):
            stream.publish(frame(i))
        assert sub.poll() is not None
        live = tally.totals()[("mjpeg", "mjpeg")]
        assert (live.joined, live.delivered, live.skipped) == (1, 1, 4)
    assert len(tally) == 0
    left = tally.totals()[("mjpeg", "mjpeg")]
    assert left == live  # leaving moves the counts, it neither drops nor doubles them
    with stream.subscribe(kind="mjpeg") as again:
        stream.publish(frame(5))
        assert again.poll() is not None
        both = Totals(2, live.delivered + again.delivered, live.skipped + again.skipped, 0)
        assert tally.totals()[("mjpeg", "mjpeg")] == both
    assert tally.totals()[("mjpeg", "mjpeg")] == both


def test_cursors_count_by_output_and_ring_and_leave_once() -> None:
    tally = ClientTally()
    video = Ring(StreamKind.MPEG2, tally=tally)
    audio = Ring("aac", tally=tally, is_cut=every_frame)
    Source(gop=12).publish(video, 24)
    Source(audio=True).publish(audio, 3)
    cur = video.subscribe(kind="mp4")
    sound = audio.subscribe(kind="mp4 audio")
    assert len(cur.take_frames(100)) == 12
    assert len(sound.take_frames(100)) == 1
    cur.close()
    cur.close()  # idempotent: counted once
    sound.close()
    totals = tally.totals()
    assert totals[("mp4", "mpeg2")] == Totals(1, 12, 0, 0)
    assert totals[("mp4", "aac")] == Totals(1, 1, 0, 0)


def test_a_ring_without_a_tally_counts_nothing_anywhere() -> None:
    ring = Ring()
    Source().publish(ring, 12)
    with ring.subscribe() as cur:
        assert cur.take(1 << 20)


def test_output_is_the_first_word_of_the_reader_kind() -> None:
    assert output_of("webrtc video") == "webrtc"
    assert output_of("mp4 audio") == "mp4"
    assert output_of("hls") == "hls"


def test_sample_puts_each_live_reader_lag_into_its_output_bucket() -> None:
    tally = ClientTally()
    stream = Stream(StreamKind.MJPEG, tally=tally)
    ring = Ring(StreamKind.MPEG2, tally=tally)
    sub = stream.subscribe(kind="mjpeg")
    cur = ring.subscribe(kind="mpeg2")
    sub.lag_ns = NS_PER_SECOND // 10  # exactly a bound: counted in it (le)
    cur.lag_ns = 40 * NS_PER_SECOND  # past the last bound: +Inf only
    tally.sample()
    sub.close()
    tally.sample()  # a reader that left is no longer sampled
    lags = dict(tally.lags())
    mjpeg = [0] * (len(LAG_BUCKETS_S) + 1)
    mjpeg[LAG_BUCKETS_S.index(0.1)] = 1
    assert lags["mjpeg"].counts == mjpeg
    assert lags["mjpeg"].total_s == 0.1
    assert lags["mpeg2"].counts == [0] * len(LAG_BUCKETS_S) + [2]
    assert lags["mpeg2"].total_s == 80.0
    cur.close()


def test_lag_buckets_are_ascending_and_observe_bisects_on_le() -> None:
    assert list(LAG_BUCKETS_S) == sorted(set(LAG_BUCKETS_S))
    buckets = LagBuckets()
    for seconds in (0.0, 0.05, 0.0500001, 30.0, 31.0):
        buckets.observe(seconds)
    assert buckets.counts[0] == 2
    assert buckets.counts[1] == 1
    assert buckets.counts[-2] == 1
    assert buckets.counts[-1] == 1
