"""The public interface between Ring and Cursor (and the budget and its streams)."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

import gateway.hub
from gateway.errors import CapacityError, GatewayError, LocalProtocolError
from gateway.hub import Ring, StreamFullError
from tests.hub.test_hub_ring import Source

HUB = Path(gateway.hub.__file__).parent


def _foreign_private_uses(path: Path) -> list[str]:
    """Return ``x._name`` uses in ``path`` where ``x`` is not ``self`` (or ``self._y``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id == "self":
            continue
        found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("module", ["cursor.py", "ring.py", "delivery.py", "egress.py"])
def test_ring_cursor_and_budget_touch_no_private_member_of_another_object(module: str) -> None:
    assert _foreign_private_uses(HUB / module) == []


def test_frame_at_offset_and_cut_at_or_after() -> None:
    ring = Ring(seconds=1.2)
    src = Source(gop=12, i_size=2000, p_size=500)
    frames = src.publish(ring, 40)  # 0.48 s GOPs: 12 .. 39 held
    assert (ring.first_seq, ring.next_seq) == (12, 40)
    assert ring.frame_at(12) is frames[12]
    assert ring.frame_at(39) is frames[39]
    for seq in (11, 40, -1):
        with pytest.raises(LocalProtocolError, match=f"position {seq} is not held"):
            ring.frame_at(seq)
    # Offsets count every byte ever published, evicted frames included.
    assert ring.offset(12) == sum(f.size for f in frames[:12])
    assert ring.offset(40) == sum(f.size for f in frames)  # the next position
    with pytest.raises(LocalProtocolError):
        ring.offset(11)
    with pytest.raises(LocalProtocolError):
        ring.offset(41)
    cuts = [ring.cut_at_or_after(s) for s in (0, 12, 13, 24, 37, 40)]
    assert cuts == [12, 12, 24, 24, None, None]
    assert ring.connection_start == 0


async def test_wait_for_shares_one_future_per_kind_resolved_by_publish() -> None:
    ring = Ring()
    src = Source(gop=4)
    data, cut = ring.wait_for(cut=False), ring.wait_for(cut=True)
    assert ring.wait_for(cut=False) is data
    assert ring.wait_for(cut=True) is cut
    src.n = 1
    src.publish(ring, 1)  # not a cut point
    assert data.done()
    assert not cut.done()
    src.publish(ring, 3)  # frame 4 is one
    assert cut.done()
    data, cut = ring.wait_for(cut=False), ring.wait_for(cut=True)
    ring.wake_waiters()
    assert data.done()
    assert cut.done()
    data = ring.wait_for(cut=False)
    ring.close()
    assert data.done()


def test_arm_calls_the_listener_on_publish_and_close_until_disarmed() -> None:
    ring = Ring()
    src = Source(gop=4)
    calls: list[int] = []

    def listener() -> None:
        calls.append(ring.next_seq)

    ring.arm(listener)
    src.publish(ring, 2)
    ring.disarm(listener)
    ring.disarm(listener)  # idempotent
    src.publish(ring, 1)
    ring.arm(listener)
    ring.close()
    assert calls == [1, 2, 3]


def test_discard_forgets_a_cursor() -> None:
    ring = Ring()
    cur = ring.subscribe()
    assert list(ring) == [cur]
    ring.discard(cur)
    ring.discard(cur)
    assert len(ring) == 0
    cur.close()  # the cursor's own close still works
    assert cur.closed


def test_capacity_errors_are_neither_side_protocol_errors() -> None:
    assert issubclass(StreamFullError, CapacityError)
    assert issubclass(CapacityError, GatewayError)
    assert not issubclass(StreamFullError, LocalProtocolError)
    ring = Ring(max_subscribers=0)
    with pytest.raises(CapacityError, match="0 subscribers"):
        ring.subscribe()


async def test_a_closing_cursor_wakes_only_the_waiters_not_parked_writers() -> None:
    ring = Ring()
    src = Source(gop=4)
    src.publish(ring, 4)
    parked, waiting = ring.subscribe(), ring.subscribe()
    parked.take(1 << 20)
    waiting.take(1 << 20)
    parked.set_deliver(lambda: True)
    tp, tw = asyncio.create_task(parked.wait()), asyncio.create_task(waiting.wait())
    await asyncio.sleep(0)
    waiting.close()
    assert await tw is False
    await asyncio.sleep(0)
    assert not tp.done()  # still parked: publish goes on handing it frames
    parked.close()
    assert await tp is False
