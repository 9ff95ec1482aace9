"""The connection table: phases, deadlines, caps and eviction, on a fake clock."""

from __future__ import annotations

import pytest

from gateway.errors import LocalProtocolError
from gateway.server import ConnectionTable, Phase, Reason


def table(
    *, header: float = 10.0, keepalive: float = 15.0, total: int = 100, per_address: int = 10
) -> ConnectionTable[str]:
    return ConnectionTable(
        header_timeout=header,
        keepalive_timeout=keepalive,
        max_connections=total,
        max_per_address=per_address,
    )


def test_a_new_connection_owes_its_head_by_header_timeout_from_connect() -> None:
    t = table()
    assert t.admit("a", "10.0.0.1", now=100.0).refused is None
    assert t.phase("a") is Phase.HEAD
    assert t.get_timer() == 110.0
    assert t.handle_timer(109.999) == []
    assert t.handle_timer(110.0) == [("a", "10.0.0.1", Reason.HEADER_TIMEOUT)]
    assert "a" not in t
    assert t.count("10.0.0.1") == 0
    assert t.get_timer() is None


def test_a_trickled_head_does_not_move_the_deadline() -> None:
    t = table()
    t.admit("slow", "10.0.0.1", now=0.0)
    for now in (1.0, 5.0, 9.9):
        t.data_received("slow", now)
    assert t.get_timer() == 10.0
    assert t.handle_timer(10.0) == [("slow", "10.0.0.1", Reason.HEADER_TIMEOUT)]


def test_a_busy_connection_has_no_deadline_however_long_it_streams() -> None:
    t = table()
    t.admit("viewer", "10.0.0.1", now=0.0)
    t.data_received("viewer", 0.1)
    t.request_started("viewer", 0.0)
    assert t.phase("viewer") is Phase.BUSY
    assert t.get_timer() is None
    assert t.handle_timer(86_400.0) == []
    assert "viewer" in t


def test_keepalive_counts_from_the_end_of_the_last_response() -> None:
    t = table()
    t.admit("c", "10.0.0.1", now=0.0)
    t.request_started("c", 0.0)
    t.response_finished("c", now=100.0)
    assert t.phase("c") is Phase.IDLE
    assert t.get_timer() == 115.0
    assert t.handle_timer(114.9) == []
    assert t.handle_timer(115.0) == [("c", "10.0.0.1", Reason.IDLE_TIMEOUT)]
    assert not Reason.IDLE_TIMEOUT.shed


def test_the_first_byte_after_a_pause_starts_a_head_deadline() -> None:
    t = table()
    t.admit("c", "10.0.0.1", now=0.0)
    t.request_started("c", 0.0)
    t.response_finished("c", now=1.0)
    t.data_received("c", now=3.0)
    assert t.phase("c") is Phase.HEAD
    assert t.get_timer() == 13.0
    t.data_received("c", now=12.0)  # more trickle: the deadline stays
    assert t.handle_timer(13.0) == [("c", "10.0.0.1", Reason.HEADER_TIMEOUT)]


def test_the_next_request_clears_the_keepalive_deadline() -> None:
    t = table()
    t.admit("c", "10.0.0.1", now=0.0)
    t.request_started("c", 0.0)
    t.response_finished("c", now=1.0)
    t.request_started("c", 0.0)
    assert t.get_timer() is None


def test_deadlines_expire_in_order_across_phases() -> None:
    t = table(header=10.0, keepalive=2.0)
    t.admit("head", "10.0.0.1", now=0.0)  # deadline 10
    t.admit("idle", "10.0.0.2", now=0.0)
    t.request_started("idle", 0.0)
    t.response_finished("idle", now=5.0)  # deadline 7
    assert t.get_timer() == 7.0
    assert t.handle_timer(7.0) == [("idle", "10.0.0.2", Reason.IDLE_TIMEOUT)]
    assert t.get_timer() == 10.0


def test_over_the_per_address_cap_is_refused_and_others_still_get_in() -> None:
    t = table(per_address=2)
    assert t.admit("a1", "10.0.0.1", 0.0).refused is None
    assert t.admit("a2", "10.0.0.1", 0.0).refused is None
    assert t.admit("a3", "10.0.0.1", 0.0).refused is Reason.PER_ADDRESS
    assert "a3" not in t
    assert t.admit("b1", "10.0.0.2", 0.0).refused is None
    t.remove("a1")
    assert t.admit("a3", "10.0.0.1", 0.0).refused is None


def test_at_the_total_cap_the_oldest_head_is_evicted_first() -> None:
    t = table(total=3)
    t.admit("idle", "10.0.0.1", 0.0)
    t.request_started("idle", 0.0)
    t.response_finished("idle", 0.5)
    t.admit("old", "10.0.0.2", 1.0)
    t.admit("new", "10.0.0.3", 2.0)
    admission = t.admit("x", "10.0.0.4", 3.0)
    assert (admission.refused, admission.evicted, admission.evicted_address) == (
        None,
        "old",
        "10.0.0.2",
    )
    assert "old" not in t
    assert t.count("10.0.0.2") == 0
    assert t.admit("y", "10.0.0.5", 3.0).evicted == "new"
    assert t.admit("z", "10.0.0.6", 3.0).evicted == "x"


def test_at_the_total_cap_idle_keepalive_goes_when_no_head_is_owed() -> None:
    t = table(total=2)
    for conn in ("a", "b"):
        t.admit(conn, "10.0.0.1", 0.0)
        t.request_started(conn, 0.0)
    t.response_finished("b", 1.0)
    assert t.admit("c", "10.0.0.2", 2.0).evicted == "b"


def test_at_the_total_cap_with_every_connection_busy_the_new_one_is_refused() -> None:
    t = table(total=2)
    for conn in ("a", "b"):
        t.admit(conn, "10.0.0.1", 0.0)
        t.request_started(conn, 0.0)
    admission = t.admit("c", "10.0.0.2", 1.0)
    assert (admission.refused, admission.evicted) == (Reason.TOTAL, None)
    assert len(t) == 2


def test_remove_is_idempotent_and_updates_for_unknown_connections_are_ignored() -> None:
    t = table()
    t.admit("a", "10.0.0.1", 0.0)
    t.remove("a")
    t.remove("a")
    t.request_started("a", 0.0)
    t.response_finished("a", 1.0)
    t.data_received("a", 2.0)
    assert len(t) == 0
    assert t.phase("a") is None
    assert t.get_timer() is None


def test_misuse_is_a_local_protocol_error() -> None:
    t = table()
    t.admit("a", "10.0.0.1", 0.0)
    with pytest.raises(LocalProtocolError):
        t.admit("a", "10.0.0.1", 0.0)
    with pytest.raises(LocalProtocolError):
        table(header=0.0)
    with pytest.raises(LocalProtocolError):
        table(total=0)


def test_ten_thousand_connections_expire_in_one_pass_in_order() -> None:
    t = table(total=20_000, per_address=20_000)
    for i in range(10_000):
        t.admit(f"c{i}", "10.0.0.1", now=i / 1000)
    expired = t.handle_timer(10.0 + 4.9995)
    assert [c for c, _, _ in expired] == [f"c{i}" for i in range(5_000)]
    assert len(t) == 5_000
    assert t.count("10.0.0.1") == 5_000


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_says_whether_it_is_shed(reason: Reason) -> None:
    assert reason.shed is (reason is not Reason.IDLE_TIMEOUT)
    assert reason.value


def test_a_body_is_owed_by_header_timeout_after_its_head() -> None:
    t = table()
    t.admit("post", "10.0.0.1", now=0.0)
    t.request_started("post", 4.0, body=True)
    assert t.phase("post") is Phase.BODY
    assert t.get_timer() == 14.0
    t.data_received("post", 8.0)  # body bytes trickling in: the deadline stays
    assert t.handle_timer(14.0) == [("post", "10.0.0.1", Reason.BODY_TIMEOUT)]


def test_a_complete_body_makes_the_request_busy() -> None:
    t = table(total=1)
    t.admit("post", "10.0.0.1", now=0.0)
    t.request_started("post", 1.0, body=True)
    t.body_received("post")
    assert t.phase("post") is Phase.BUSY
    assert t.get_timer() is None
    t.body_received("post")  # again (aiohttp's eof callback after the handler): ignored
    assert t.phase("post") is Phase.BUSY


def test_a_request_with_its_body_coming_is_not_evicted() -> None:
    t = table(total=1)
    t.admit("post", "10.0.0.1", now=0.0)
    t.request_started("post", 1.0, body=True)
    assert t.admit("new", "10.0.0.2", 2.0).refused is Reason.TOTAL


def test_only_the_first_byte_after_a_pause_reports_a_new_deadline() -> None:
    t = table()
    t.admit("c", "10.0.0.1", now=0.0)
    assert not t.data_received("c", 0.5)
    t.request_started("c", 1.0)
    assert not t.data_received("c", 1.5)
    t.response_finished("c", 2.0)
    assert t.data_received("c", 3.0)
    assert not t.data_received("c", 3.5)
