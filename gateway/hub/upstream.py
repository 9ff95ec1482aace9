"""The rate asked of the camera: what the clients need, with hysteresis (sans-IO).

One upstream connection serves every client of a camera stream, so it runs at the
highest rate any client asked for (DESIGN §6). Raising happens at once (a client
asking more must get it); lowering waits ``lower_after`` seconds so clients coming
and going do not make the gateway reconnect to the camera each time.
"""

from __future__ import annotations

import math


def _rank(fps: int | None) -> float:
    # None asks for the camera's default rate, the most a camera will send.
    return math.inf if fps is None else fps


class UpstreamRate:
    """Chooses the ``fps`` asked upstream; drive with ``update`` and the timer pair."""

    def __init__(self, configured: int | None, *, lower_after: float = 5.0) -> None:
        """Start at ``configured`` (the camera's ``fps``; None: the camera's default).

        The configured rate is also the ceiling: a client asking more than the camera
        is configured for gets the configured rate.
        """
        self.configured = configured
        self.lower_after = lower_after
        #: The rate asked of the camera now.
        self.current = configured
        self._lower_to: int | None = None
        self._deadline: float | None = None

    def wanted(self, fps: float | None, clients: bool) -> int | None:
        """Return the upstream rate for the clients' highest wish (None: source rate)."""
        if not clients or fps is None:
            return self.configured
        asked = max(1, math.ceil(fps - 1e-9))
        return asked if self.configured is None else min(asked, self.configured)

    def update(self, fps: float | None, clients: bool, now: float) -> bool:
        """Take the clients' current wish; return True when ``current`` changed now."""
        target = self.wanted(fps, clients)
        if target == self.current:
            self._deadline = None
            return False
        if _rank(target) > _rank(self.current):
            self.current, self._deadline = target, None
            return True
        self._lower_to = target
        if self._deadline is None:
            self._deadline = now + self.lower_after
        return False

    def get_timer(self) -> float | None:
        """Return when a pending lowering is due, or None."""
        return self._deadline

    def handle_timer(self, now: float) -> bool:
        """Apply a due lowering; return True when ``current`` changed."""
        if self._deadline is None or now < self._deadline:
            return False
        self._deadline = None
        self.current = self._lower_to
        return True
