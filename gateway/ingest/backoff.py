"""Reconnect and stall policy, with time as an argument (``get_timer``/``handle_timer``)."""

from __future__ import annotations

import asyncio
import enum
import random
import time
from typing import Protocol


class Failure(enum.Enum):
    """Why a connection attempt or a live connection ended."""

    #: Refused, reset, closed, timed out: the network or the camera went away.
    NETWORK = "network"
    #: No frame (whether or not bytes came) for ``stall_timeout`` seconds.
    STALL = "stall"
    #: The body ended (close delimiter) while the connection stayed open.
    ENDED = "ended"
    #: 401/403: the camera refused our credentials.
    AUTH = "auth"
    #: The camera answered with something we cannot ingest (503, HTML, wrong type).
    UPSTREAM = "upstream"
    #: The camera broke HTTP or multipart framing.
    PROTOCOL = "protocol"


class ReconnectPolicy:
    """Jittered exponential backoff: ``initial`` doubling to ``maximum``; auth waits longer.

    The attempt count resets once a connection has stayed live for ``healthy_after``
    seconds, so a camera that drops once an hour reconnects fast every time. A rejected
    password always waits ``auth_delay``: a tight loop could lock the camera's account.
    """

    def __init__(
        self,
        *,
        initial: float = 0.5,
        maximum: float = 30.0,
        auth_delay: float = 60.0,
        healthy_after: float = 60.0,
        jitter: float = 0.25,
        rng: random.Random | None = None,
    ) -> None:
        """Create a policy.

        :param initial: first delay in seconds.
        :param maximum: cap for the doubling delay.
        :param auth_delay: delay after a 401/403.
        :param healthy_after: seconds live after which the attempt count resets.
        :param jitter: fraction of each delay taken off at random (0 <= jitter < 1).
        :param rng: random source (tests pass a seeded one).
        """
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        self.initial = initial
        self.maximum = maximum
        self.auth_delay = auth_delay
        self.healthy_after = healthy_after
        self.jitter = jitter
        self._rng = rng or random.Random()
        #: Consecutive failures since the last healthy connection.
        self.attempts = 0
        self._live_since: float | None = None
        self._retry_at: float | None = None

    def connected(self, now: float) -> None:
        """Note that the stream went live at ``now``."""
        self._live_since = now
        self._retry_at = None

    def failed(self, now: float, failure: Failure) -> float:
        """Note a failure at ``now``; return the delay before the next attempt."""
        if self._live_since is not None and now - self._live_since >= self.healthy_after:
            self.attempts = 0
        self._live_since = None
        if failure is Failure.AUTH:
            base = self.auth_delay
        else:
            base = min(self.maximum, self.initial * 2 ** min(self.attempts, 32))
        self.attempts += 1
        delay = base * (1.0 - self.jitter * self._rng.random())
        self._retry_at = now + delay
        return delay

    def get_timer(self) -> float | None:
        """Return when the next attempt is due, or None if none is scheduled."""
        return self._retry_at

    def handle_timer(self, now: float) -> bool:
        """Return True (once) when the scheduled attempt is due at ``now``."""
        if self._retry_at is None or now < self._retry_at:
            return False
        self._retry_at = None
        return True


class StallWatchdog:
    """Declare a connection stalled after ``timeout`` seconds without a frame.

    Bytes are not progress: a camera that sends an endless part, torn JPEGs or an
    epilogue after its close delimiter is as frozen as one that sends nothing. Which of
    the two it was goes into the reason.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._last: float | None = None
        self._last_data = 0.0
        self._bytes_at_frame = 0
        self._bytes = 0

    def start(self, now: float, bytes_in: int = 0) -> None:
        """Arm at ``now``, the connection's start; ``bytes_in`` is what it has read so far."""
        self._last = self._last_data = now
        self._bytes_at_frame = self._bytes = bytes_in

    def data_received(self, now: float, bytes_in: int) -> None:
        """Note the last read: when, and the bytes read in all by then (a running total)."""
        if bytes_in > self._bytes:
            self._last_data = max(self._last_data, now)
            self._bytes = bytes_in

    def frame_received(self, now: float, bytes_in: int) -> None:
        """Note a frame at ``now``, when the connection had read ``bytes_in`` bytes."""
        self._last = self._last_data = now
        self._bytes_at_frame = bytes_in
        self._bytes = max(self._bytes, bytes_in)

    def stop(self) -> None:
        """Disarm until the next ``start``."""
        self._last = None

    def get_timer(self) -> float | None:
        """Return when the connection counts as stalled if no frame comes before."""
        return None if self._last is None else self._last + self.timeout

    def handle_timer(self, now: float) -> str | None:
        """Return why the connection has stalled by ``now``, or None while it has not."""
        deadline = self.get_timer()
        if deadline is None or now < deadline:
            return None
        silent = now - self._last_data
        if silent >= self.timeout / 2:
            # Silent for most of the window (a frame's trailing delimiter came, then
            # nothing): the camera stopped sending, whatever trickled in first.
            return f"stalled: no data for {silent:.1f} s"
        arrived = format_bytes(self._bytes - self._bytes_at_frame)
        return f"stalled: no frame for {self.timeout:.1f} s while {arrived} arrived"


def format_bytes(count: int) -> str:
    """Return a byte count for people: ``812 B``, ``4.1 kB``, ``3.2 MB`` (SI units)."""
    if count < 1000:
        return f"{count} B"
    value = count / 1000
    for unit in ("kB", "MB"):
        if value < 999.95:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


class Clock(Protocol):
    """Where supervision reads the time and waits (tests pass a fake one)."""

    def monotonic(self) -> float:
        """Return seconds on a monotonic clock."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""


class SystemClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the event loop."""
        await asyncio.sleep(seconds)
