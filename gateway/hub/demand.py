"""Which upstream streams of an on-demand camera are open: consumers in, a linger out (sans-IO).

An on-demand camera (``[[cameras]] on_demand = true``) holds no camera connection
nobody needs (issue 11): a stream opens as soon as something consumes it and closes
``idle_seconds`` after its last consumer left, so viewers coming and going in quick
succession reuse one connection. The caller counts the consumers of each source (the
camera media does) and calls ``update`` whenever a count may have changed; closing is
a timer (``get_timer`` / ``handle_timer``), even with ``idle_seconds = 0``, so that a
consumer replaced within one loop turn (a session restarting) never closes anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.errors import LocalProtocolError
from gateway.media import StreamKind


@dataclass(slots=True)
class _Source:
    """One upstream stream's demand state."""

    #: Consumers at the last update.
    consumers: int = 0
    #: True while the upstream stream is (to be) open.
    open: bool = False
    #: When an unwatched open stream closes (caller's clock), or None.
    deadline: float | None = None
    #: Times opened and closed on demand.
    opened: int = 0
    closed: int = 0


class SourceDemand:
    """Opens a camera's streams on their first consumer and closes them after a linger."""

    def __init__(self, kinds: Iterable[StreamKind], *, idle_seconds: float) -> None:
        """Track ``kinds`` (all closed); close each ``idle_seconds`` after its last consumer."""
        if idle_seconds < 0:
            raise LocalProtocolError("idle_seconds must be >= 0")
        self.idle_seconds = idle_seconds
        self._sources = {kind: _Source() for kind in kinds}

    def is_open(self, kind: StreamKind) -> bool:
        """Return True while ``kind``'s upstream stream is (to be) open."""
        source = self._sources.get(kind)
        return source is not None and source.open

    def update(self, consumers: Mapping[StreamKind, int], now: float) -> list[StreamKind]:
        """Take each stream's consumer count; return the streams to open now."""
        opening: list[StreamKind] = []
        for kind, source in self._sources.items():
            count = source.consumers = consumers.get(kind, 0)
            if count:
                source.deadline = None
                if not source.open:
                    source.open = True
                    source.opened += 1
                    opening.append(kind)
            elif source.open and source.deadline is None:
                source.deadline = now + self.idle_seconds
        return opening

    def get_timer(self) -> float | None:
        """Return when the next unwatched stream is due to close, or None."""
        deadlines = [s.deadline for s in self._sources.values() if s.deadline is not None]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> list[StreamKind]:
        """Return the streams to close now: unwatched for ``idle_seconds`` at ``now``."""
        closing: list[StreamKind] = []
        for kind, source in self._sources.items():
            if source.deadline is not None and source.deadline <= now:
                source.deadline = None
                source.open = False
                source.closed += 1
                closing.append(kind)
        return closing

    def stats(self, kind: StreamKind) -> dict[str, object]:
        """Return ``kind``'s figures for ``/api`` ``streams``."""
        source = self._sources[kind]
        return {
            "on_demand": {
                "open": source.open,
                "closing": source.deadline is not None,
                "opened": source.opened,
                "closed": source.closed,
                "idle_seconds": self.idle_seconds,
            }
        }
