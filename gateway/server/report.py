"""Sans-IO log budgets: a summary line per burst (at most one a minute), a token bucket.

A flood of hostile connections must cost the log a line, not a line per connection:
``Tally`` counts events by label and client address and says when its summary is due —
once the burst has been quiet for ``settle`` seconds, or ``interval`` after its first
event if it goes on, and never sooner than ``interval`` after the previous summary.
``TokenBucket`` lets the first few events of a kind log a line of their own.
"""

from __future__ import annotations

from collections import Counter

from gateway.errors import LocalProtocolError

#: Addresses shown per label in a summary line.
TOP_ADDRESSES = 3


class Tally:
    """Events counted by label and address, summarised in one line per due time."""

    def __init__(
        self,
        *,
        interval: float = 60.0,
        settle: float = 3.0,
        max_addresses: int = 1024,
    ) -> None:
        if not 0 < settle <= interval:
            raise LocalProtocolError("need 0 < settle <= interval")
        self.interval = interval
        self.settle = settle
        self.max_addresses = max_addresses
        #: Every event ever counted, by label (for metrics).
        self.totals: Counter[str] = Counter()
        self._counts: dict[str, Counter[str]] = {}
        self._first: float | None = None
        self._last = 0.0
        self._reported: float | None = None

    @property
    def pending(self) -> int:
        """Return the events not yet summarised."""
        return sum(c.total() for c in self._counts.values())

    def record(self, label: str, address: str, now: float) -> None:
        """Count one event ``label`` from ``address``."""
        self.totals[label] += 1
        counts = self._counts.setdefault(label, Counter())
        if address not in counts and len(counts) >= self.max_addresses:
            address = "other addresses"  # bounded memory under a spoofed-address flood
        counts[address] += 1
        if self._first is None:
            self._first = now
        self._last = now

    def get_timer(self) -> float | None:
        """Return when the next summary is due (None: nothing to report)."""
        if self._first is None:
            return None
        due = min(self._first + self.interval, self._last + self.settle)
        if self._reported is not None:
            due = max(due, self._reported + self.interval)
        return due

    def handle_timer(self, now: float) -> tuple[int, float, str] | None:
        """Return ``(events, seconds, details)`` when a summary is due, and start afresh."""
        due = self.get_timer()
        if due is None or now < due:
            return None
        return self.flush(now)

    def flush(self, now: float) -> tuple[int, float, str] | None:
        """Return the summary of the pending events now, due or not (None: none pending)."""
        if self._first is None:
            return None
        parts = []
        for label, counts in sorted(self._counts.items(), key=lambda item: -item[1].total()):
            top = ", ".join(f"{a} ({n})" for a, n in counts.most_common(TOP_ADDRESSES))
            others = len(counts) - TOP_ADDRESSES
            more = f" and {others} more" if others > 0 else ""
            parts.append(f"{counts.total()} {label} from {top}{more}")
        summary = (self.pending, now - self._first, "; ".join(parts))
        self._counts.clear()
        self._first = None
        self._reported = now
        return summary


class TokenBucket:
    """``burst`` events at once, then one per ``period / burst`` seconds."""

    def __init__(self, *, burst: int = 5, period: float = 60.0) -> None:
        if burst < 1 or period <= 0:
            raise LocalProtocolError("need burst >= 1 and period > 0")
        self.burst = burst
        self._rate = burst / period
        self._tokens = float(burst)
        self._at: float | None = None

    def allow(self, now: float) -> bool:
        """Take a token if one is left; return whether the event may log its own line."""
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
