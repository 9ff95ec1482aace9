"""Sans-IO bookkeeping of the HTTP connections: phases, deadlines, caps, eviction.

Every connection is in one phase. ``HEAD``: it owes us a complete request head, by
``header_timeout`` from connect or from the first byte after a keep-alive pause (a
slowloris trickle does not move the deadline). ``BODY``: the head came with a body still
arriving, owed ``header_timeout`` after the head (the gateway takes only small bodies,
SDP offers; a trickled body is slowloris by other means). ``BUSY``: a request is being
handled, with no deadline here, because an MJPEG, fMP4 or LL-HLS response may last for
hours (the streaming pumps have their own write deadline). ``IDLE``: keep-alive after a
response, closed ``keepalive_timeout`` after the end of that response (nginx's
``client_header_timeout``, ``client_body_timeout``, ``keepalive_timeout``; aiohttp's own
timer counts from connect and lasts an hour).

Deadlines in one phase are ``now + constant`` appended in time order, so each phase is
an insertion-ordered dict whose first entry expires first: every transition and every
expiry is O(1), and one timer serves the whole table (``get_timer`` /
``handle_timer``). At ``max_connections`` a new connection takes the place of the
oldest one that holds no request, so an idle flood never locks out a viewer or
``/healthz``; only when every connection has a request in progress is the new one
refused. The oldest connection still owing its head goes first (a real client sends its
head within milliseconds of connecting, so under a flood the oldest are the flood's),
then the oldest idle keep-alive connection.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.errors import LocalProtocolError

C = TypeVar("C", bound=Hashable)


class Phase(enum.Enum):
    """What a connection is doing."""

    HEAD = "head"
    BODY = "body"
    BUSY = "busy"
    IDLE = "idle"


class Reason(enum.Enum):
    """Why the server closed or refused a connection (the value is the log's words)."""

    PER_ADDRESS = "over max_connections_per_address"
    TOTAL = "over max_connections"
    EVICTED = "closed for a new connection at max_connections"
    HEADER_TIMEOUT = "header timeout"
    BODY_TIMEOUT = "body timeout"
    #: Not a shed: a keep-alive connection that ended its pause normally.
    IDLE_TIMEOUT = "keep-alive timeout"

    @property
    def shed(self) -> bool:
        """Return True when the close is load shedding (reported), not routine."""
        return self is not Reason.IDLE_TIMEOUT


#: What a deadline in each waiting phase means when it passes.
_EXPIRY = (
    (Phase.HEAD, Reason.HEADER_TIMEOUT),
    (Phase.BODY, Reason.BODY_TIMEOUT),
    (Phase.IDLE, Reason.IDLE_TIMEOUT),
)


@dataclass(frozen=True, slots=True)
class Admission(Generic[C]):
    """The table's answer to a new connection."""

    #: Why the new connection is refused (``503``); None: admitted.
    refused: Reason | None = None
    #: A connection that held no request and was dropped to make room (close it).
    evicted: C | None = None
    #: The evicted connection's client address.
    evicted_address: str = ""


@dataclass(slots=True)
class _Entry:
    address: str
    phase: Phase


class ConnectionTable(Generic[C]):
    """The admitted connections, their phases and deadlines (time is an argument)."""

    def __init__(
        self,
        *,
        header_timeout: float,
        keepalive_timeout: float,
        max_connections: int,
        max_per_address: int,
    ) -> None:
        if header_timeout <= 0 or keepalive_timeout <= 0:
            raise LocalProtocolError("timeouts must be positive")
        if max_connections < 1 or max_per_address < 1:
            raise LocalProtocolError("connection caps must be at least 1")
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self._entries: dict[C, _Entry] = {}
        self._per_address: dict[str, int] = {}
        #: Deadlines of the connections in HEAD and IDLE, earliest first.
        self._waiting: dict[Phase, dict[C, float]] = {phase: {} for phase, _ in _EXPIRY}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, conn: object) -> bool:
        return conn in self._entries

    def count(self, address: str) -> int:
        """Return how many admitted connections come from ``address``."""
        return self._per_address.get(address, 0)

    def phase(self, conn: C) -> Phase | None:
        """Return the connection's phase (None once it left the table)."""
        entry = self._entries.get(conn)
        return None if entry is None else entry.phase

    def admit(self, conn: C, address: str, now: float) -> Admission[C]:
        """Admit ``conn`` in phase HEAD, or say why not; may evict an idle connection."""
        if conn in self._entries:
            raise LocalProtocolError("connection admitted twice")
        if self.count(address) >= self.max_per_address:
            return Admission(refused=Reason.PER_ADDRESS)
        evicted: C | None = None
        evicted_address = ""
        if len(self._entries) >= self.max_connections:
            evicted = self._oldest_waiting()
            if evicted is None:
                return Admission(refused=Reason.TOTAL)
            evicted_address = self._entries[evicted].address
            self.remove(evicted)
        self._entries[conn] = _Entry(address, Phase.HEAD)
        self._per_address[address] = self.count(address) + 1
        self._waiting[Phase.HEAD][conn] = now + self.header_timeout
        return Admission(evicted=evicted, evicted_address=evicted_address)

    def request_started(self, conn: C, now: float, *, body: bool = False) -> None:
        """Note that a request head is complete (``body``: its body is still to come)."""
        if body:
            self._move(conn, Phase.BODY, now + self.header_timeout)
        else:
            self._move(conn, Phase.BUSY, 0.0)

    def body_received(self, conn: C) -> None:
        """Note that the request body is complete."""
        entry = self._entries.get(conn)
        if entry is not None and entry.phase is Phase.BODY:
            self._move(conn, Phase.BUSY, 0.0)

    def response_finished(self, conn: C, now: float) -> None:
        """Note that a response ended and the connection stays open for another."""
        self._move(conn, Phase.IDLE, now + self.keepalive_timeout)

    def data_received(self, conn: C, now: float) -> bool:
        """Note bytes from the client; return True if they started a head deadline."""
        entry = self._entries.get(conn)
        if entry is None or entry.phase is not Phase.IDLE:
            return False
        self._move(conn, Phase.HEAD, now + self.header_timeout)
        return True

    def remove(self, conn: C) -> None:
        """Forget ``conn`` (closed, lost or evicted); idempotent."""
        entry = self._entries.pop(conn, None)
        if entry is None:
            return
        self._waiting.get(entry.phase, {}).pop(conn, None)
        left = self._per_address[entry.address] - 1
        if left:
            self._per_address[entry.address] = left
        else:
            del self._per_address[entry.address]

    def get_timer(self) -> float | None:
        """Return when the next deadline expires (None: no connection has one)."""
        fronts = [next(iter(d.values())) for d in self._waiting.values() if d]
        return min(fronts, default=None)

    def handle_timer(self, now: float) -> list[tuple[C, str, Reason]]:
        """Remove and return the connections whose deadline passed, with address and why."""
        expired: list[tuple[C, str, Reason]] = []
        for phase, reason in _EXPIRY:
            waiting = self._waiting[phase]
            while waiting:
                conn, deadline = next(iter(waiting.items()))
                if deadline > now:
                    break
                expired.append((conn, self._entries[conn].address, reason))
                self.remove(conn)
        return expired

    def _move(self, conn: C, phase: Phase, deadline: float) -> None:
        entry = self._entries.get(conn)
        if entry is None:
            return
        self._waiting.get(entry.phase, {}).pop(conn, None)
        entry.phase = phase
        if phase in self._waiting:
            # Re-inserted at the end: deadlines stay in order within the phase.
            self._waiting[phase][conn] = deadline

    def _oldest_waiting(self) -> C | None:
        for phase in (Phase.HEAD, Phase.IDLE):
            waiting = self._waiting[phase]
            if waiting:
                return next(iter(waiting))
        return None
