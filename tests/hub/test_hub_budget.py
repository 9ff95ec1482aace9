"""Egress budget allocator: table tests and Hypothesis properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import LocalProtocolError
from gateway.hub.budget import Demand, Priority, allocate

R, D = Priority.REQUIRED, Priority.DESIRED
KB = 1000.0


def fps_of(table: list[tuple[Priority, float, float]], budget: float | None) -> list[float]:
    return [round(x, 6) for x in allocate([Demand(*row) for row in table], budget)]


TABLE: list[tuple[str, list[tuple[Priority, float, float]], float | None, list[float]]] = [
    ("unlimited None", [(R, 10, KB), (D, 25, KB)], None, [10, 25]),
    ("unlimited 0", [(R, 10, KB), (D, 25, KB)], 0, [10, 25]),
    ("everything fits", [(R, 10, KB), (D, 25, KB)], 100 * KB, [10, 25]),
    # The issue 3 scenario: a budget of about one full-rate stream (25 x 50 kB/s).
    (
        "req keeps, des share evenly",
        [(R, 10, 50 * KB), (D, 25, 50 * KB), (D, 25, 50 * KB), (D, 25, 50 * KB)],
        25 * 50 * KB,
        [10, 5, 5, 5],
    ),
    ("des below level keep target", [(D, 2, KB), (D, 25, KB), (D, 25, KB)], 22 * KB, [2, 10, 10]),
    (
        "required do not fit: share among them, des starve",
        [(R, 10, KB), (R, 10, KB), (R, 2, KB), (D, 25, KB)],
        12 * KB,
        [5, 5, 2, 0],
    ),
    ("required exactly fit", [(R, 10, KB), (D, 25, KB)], 10 * KB, [10, 0]),
    ("levels are in fps, costs in bytes", [(D, 25, KB), (D, 25, 3 * KB)], 40 * KB, [10, 10]),
    ("zero-size frames are free", [(D, 25, 0.0), (D, 25, KB)], 5 * KB, [25, 5]),
    ("zero target", [(D, 0, KB), (D, 25, KB)], 5 * KB, [0, 5]),
    ("empty", [], 5 * KB, []),
]


@pytest.mark.parametrize(
    ("table", "budget", "want"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE]
)
def test_allocation_table(
    table: list[tuple[Priority, float, float]], budget: float | None, want: list[float]
) -> None:
    assert fps_of(table, budget) == want


def test_deterministic_and_order_independent() -> None:
    rows = [Demand(D, 25, KB), Demand(R, 5, 2 * KB), Demand(D, 3, KB), Demand(D, 25, 4 * KB)]
    a = allocate(rows, 30 * KB)
    assert a == allocate(rows, 30 * KB)
    b = allocate(rows[::-1], 30 * KB)
    assert a == b[::-1]


@pytest.mark.parametrize(
    ("demands", "budget"),
    [
        ([Demand(D, -1, KB)], KB),
        ([Demand(D, 1, -KB)], KB),
        ([Demand(D, math.inf, KB)], KB),
        ([Demand(D, 1, math.nan)], KB),
        ([Demand(D, 1, KB)], -1.0),
        ([Demand(D, 1, KB)], math.nan),
    ],
)
def test_invalid_input_is_a_local_error(demands: list[Demand], budget: float) -> None:
    with pytest.raises(LocalProtocolError, match="invalid"):
        allocate(demands, budget)


demand_st = st.builds(
    Demand,
    st.sampled_from(Priority),
    st.floats(0, 60, allow_nan=False),
    st.one_of(st.just(0.0), st.floats(100, 500_000, allow_nan=False)),
)
EPS = 1e-9


@given(st.lists(demand_st, max_size=30), st.floats(1, 50_000_000, allow_nan=False))
def test_properties(demands: list[Demand], budget: float) -> None:
    out = allocate(demands, budget)
    assert len(out) == len(demands)
    cost = math.fsum(a * d.frame_bytes for a, d in zip(out, demands, strict=True))
    # Within the budget, and nobody above its target or below zero.
    assert cost <= budget * (1 + EPS)
    assert all(0 <= a <= d.fps for a, d in zip(out, demands, strict=True))
    short = [i for i, (a, d) in enumerate(zip(out, demands, strict=True)) if a < d.fps * (1 - EPS)]
    # Required clients never lose to desired ones.
    if any(demands[i].priority is R for i in short):
        assert all(a == 0 for a, d in zip(out, demands, strict=True) if d.priority is D)
    if any(a > 0 for a, d in zip(out, demands, strict=True) if d.priority is D):
        assert all(a == d.fps for a, d in zip(out, demands, strict=True) if d.priority is R)
    # Max-min fair within the class that ran short: a client held below its target has
    # the highest allocation of its class, so raising it would take from someone with
    # no more than it has; and the budget is used up (nothing left to raise it with).
    for i in short:
        klass = demands[i].priority
        # Zero-size clients cost nothing, so they never stand in anyone's way.
        others = [
            a
            for a, d in zip(out, demands, strict=True)
            if d.priority is klass and d.frame_bytes > 0
        ]
        if out[i] > 0 or klass is R:
            assert max(others) <= out[i] * (1 + EPS) + EPS
        if klass is R or out[i] > 0:
            assert cost >= budget * (1 - 1e-6)


@given(st.lists(demand_st, max_size=20))
def test_unlimited_gives_every_target(demands: list[Demand]) -> None:
    assert allocate(demands, None) == [d.fps for d in demands]
