"""Property: whatever the interleaving (of both views), a cursor hands out whole frames,
and every discontinuity in what it hands out starts with the join bytes of a cut point."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from gateway.hub import Ring
from gateway.media import NS_PER_SECOND, CutPoint, Frame

PERIOD_NS = NS_PER_SECOND // 25


@dataclass(frozen=True)
class Kind:
    """What one published frame is."""

    cut: bool
    closed_gop: bool
    leading: bool
    size: int


kinds = st.builds(
    Kind,
    cut=st.booleans(),
    closed_gop=st.booleans(),
    leading=st.booleans(),
    size=st.integers(8, 3000),
)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.lists(kinds, min_size=1, max_size=40)),
        st.tuples(st.just("take"), st.integers(1, 8000)),
        st.tuples(st.just("take_frames"), st.integers(1, 10)),
        st.tuples(st.just("check"), st.floats(0, 1), st.integers(0, 3 * PERIOD_NS)),
        st.tuples(st.just("check_frames"), st.floats(0, 1), st.integers(0, 3 * PERIOD_NS)),
    ),
    max_size=60,
)


def make(seq: int, kind: Kind, t_ns: int) -> Frame:
    payload = f"P{seq}:".encode().ljust(kind.size, b".")
    cut = CutPoint(kind.closed_gop, False, b"J" + payload[1:]) if kind.cut else None
    return Frame(payload, "video/mpeg", seq, seq, received_ns=t_ns, cut=cut, leading=kind.leading)


def parse(item: bytes | memoryview) -> tuple[int, bool]:
    """Return (position, is a join) of one handed-out payload."""
    data = bytes(item)
    return int(data[1:].split(b":")[0]), data[:1] == b"J"


@settings(max_examples=500, deadline=None)
@given(
    ops=ops,
    seconds=st.sampled_from([0.2, 1.0, 10.0]),
    max_bytes=st.sampled_from([5_000, 50_000, 10**9]),
    maxlag_ms=st.sampled_from([None, 0, 0, 800]),
    max_buffer_bytes=st.sampled_from([2_000, 2_000, 20_000, 4_000_000]),
    start_at_oldest=st.booleans(),
)
def test_handed_out_bytes_are_whole_frames_joined_at_cut_points(
    ops: list[tuple[Any, ...]],
    seconds: float,
    max_bytes: int,
    maxlag_ms: int | None,
    max_buffer_bytes: int,
    start_at_oldest: bool,
) -> None:
    ring = Ring(seconds=seconds, max_bytes=max_bytes)
    published: dict[int, Frame] = {}
    t_ns = 0
    handed: list[bytes | memoryview] = []
    sent = 0
    cur = None
    for op in ops:
        if cur is None and op[0] != "publish":
            cur = ring.subscribe(
                ring.first_seq if start_at_oldest else "newest_cut",
                maxlag_ns=None if maxlag_ms is None else maxlag_ms * 1_000_000,
                max_buffer_bytes=max_buffer_bytes,
            )
        if op[0] == "publish":
            for kind in op[1]:
                t_ns += PERIOD_NS
                seq = ring.next_seq
                published[seq] = frame = make(seq, kind, t_ns)
                ring.publish(frame)
        elif op[0] == "take":
            assert cur is not None
            limit = op[1]
            out = cur.take(limit)
            total = sum(len(b) for b in out)
            assert len(out) <= 1 or total <= limit
            sent += total
            handed += out
        elif op[0] == "take_frames":
            assert cur is not None
            deliveries = cur.take_frames(op[1])
            assert len(deliveries) <= op[1]
            for d in deliveries:
                # Every frame here has a non-empty join: joined items are exactly joins.
                assert d.joined == (d.data is not d.frame.payload)
            sent += sum(len(d.data) for d in deliveries)
            handed += [d.data for d in deliveries]
        elif op[0] == "check":
            assert cur is not None
            queued = int(sent * op[1])
            cur.check(queued, t_ns + op[2])
            assert cur.lag_ns >= 0
        else:
            assert cur is not None
            cur.check_frames(int(len(handed) * op[1]), t_ns + op[2])
            assert cur.lag_ns >= 0
    if cur is None:
        return
    event(f"cuts={min(cur.cuts, 3)} skipped={cur.skipped > 0}")
    # Zero-copy and whole frames: every item is a frame's payload or its cut's join.
    items = [parse(b) for b in handed]
    for item, (seq, join) in zip(handed, items, strict=True):
        frame = published[seq]
        if join:
            assert frame.cut is not None
            assert item is frame.cut.join
        else:
            assert item is frame.payload
    if not items:
        return
    assert items[0][1], "the first bytes are a join"
    last_join = items[0][0]
    for (a, _), (b, join) in itertools.pairwise(items):
        assert b > a
        if join:
            last_join = b
            continue
        if b == a + 1:
            continue
        # A gap without a join: only the leading pictures right after an open-GOP join.
        assert a == last_join
        cut = published[a].cut
        assert cut is not None
        assert not cut.closed_gop
        assert all(published[s].leading for s in range(a + 1, b))
    assert cur.delivered == len(items)
    assert cur.bytes == sent
