"""Shared fixtures for the demuxer tests: feed every input every way (STYLE §13)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from gateway.demux.multipart import Event, MultipartDemuxer
from gateway.errors import RemoteProtocolError

#: What one way of feeding produced: the events, then the error message if one was raised.
Outcome = tuple[list[Event], str | None]
Feeder = Callable[..., Outcome]


def _feed(demuxer: MultipartDemuxer, data: bytes, mode: str) -> Outcome:
    events: list[Event] = []
    try:
        if mode == "all":
            events += demuxer.receive_data(data)
        elif mode == "bytewise":
            for i in range(len(data)):
                events += demuxer.receive_data(data[i : i + 1])
        elif mode == "random":
            rng = random.Random(len(data))
            i = 0
            while i < len(data):
                n = rng.randint(1, 97)
                events += demuxer.receive_data(memoryview(data)[i : i + n])
                i += n
        else:  # the BufferedProtocol path: small or large size hints, short reads
            hint, short = (1, 5) if mode == "buffer-small" else (-1, 1 << 30)
            i = 0
            while i < len(data):
                buf = demuxer.get_buffer(hint)
                assert len(buf) >= 1
                n = min(len(buf), len(data) - i, short)
                buf[:n] = data[i : i + n]
                events += demuxer.buffer_updated(n)
                i += n
        events += demuxer.receive_eof()
    except RemoteProtocolError as exc:
        return events, str(exc)
    return events, None


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
