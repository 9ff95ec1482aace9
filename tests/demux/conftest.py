"""Shared fixtures for the demuxer tests: feed every input every way (STYLE §13)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateway.demux.multipart import Event, MultipartDemuxer
from tests.demux.feeding import feed_one

#: What one way of feeding produced: the events, then the error message if one was raised.
Outcome = tuple[list[Event], str | None]
Feeder = Callable[..., Outcome]


def _feed(demuxer: MultipartDemuxer, data: bytes, mode: str) -> Outcome:
    return feed_one(demuxer, data, mode)


MODES = ("all", "bytewise", "random", "buffer-small", "buffer-large")


def feed_every_way(content_type: str | None, data: bytes, **limits: Any) -> Outcome:
    """Feed ``data`` in every mode; assert identical outcomes and return the all-at-once one."""
    outcomes = {mode: _feed(MultipartDemuxer(content_type, **limits), data, mode) for mode in MODES}
    reference_events, reference_error = outcomes["bytewise"]
    for mode, (events, error) in outcomes.items():
        assert error == reference_error, mode
        if error is None:
            assert events == reference_events, mode
        else:  # events returned before the failing call are a prefix of the bytewise ones
            assert events == reference_events[: len(events)], mode
    return outcomes["bytewise"]


@pytest.fixture
def feed() -> Feeder:
    """Return the every-way feeder."""
    return feed_every_way
