"""What one camera's readers were handed, kept after they leave, and how far behind they ran.

A client's counters (frames delivered and skipped, cuts) live on its ``Subscription`` or
``Cursor`` and go away with it; ``/metrics`` needs totals that only ever grow (a
Prometheus counter that drops reads as a restart). Every ``Stream`` and ``Ring`` of a
camera reports its readers joining and leaving here: the totals of a key are those of
the readers that left plus those of the readers still there, so they survive a client
leaving, and a rendition stopping with its ring. Lag is sampled (``sample``), not
summed: each call puts every live reader's current lag into a bucket of its kind.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from gateway.media import NS_PER_SECOND

#: Upper bounds (seconds) of the lag histogram's buckets; a last one (+Inf) is implied.
#: From "on time" (one frame at 25-40 fps) to the 10 s MPEG-2 prebuffer and beyond.
LAG_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Member(Protocol):
    """What the tally reads of a reader (a ``Subscription`` or a ``Cursor``)."""

    #: The endpoint's kind (``mjpeg``, ``mp4 audio``, ``webrtc video``...).
    kind: str
    delivered: int
    skipped: int
    cuts: int
    lag_ns: int


@dataclass(slots=True)
class Totals:
    """Frames handed out, frames passed over and cuts, summed over readers."""

    #: Readers that joined.
    joined: int = 0
    delivered: int = 0
    skipped: int = 0
    cuts: int = 0

    def add(self, member: Member) -> None:
        """Add ``member``'s counters."""
        self.delivered += member.delivered
        self.skipped += member.skipped
        self.cuts += member.cuts


@dataclass(slots=True)
class LagBuckets:
    """A histogram of sampled lags: a count per bucket (not cumulative) and their sum."""

    #: Samples per bound of ``LAG_BUCKETS_S``, then the +Inf bucket.
    counts: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS_S) + 1))
    #: Sum of the samples, seconds.
    total_s: float = 0.0

    def observe(self, seconds: float) -> None:
        """Count one sample of ``seconds``."""
        self.counts[bisect_left(LAG_BUCKETS_S, seconds)] += 1
        self.total_s += seconds


def output_of(kind: str) -> str:
    """Return the output a reader kind belongs to (``mp4 audio`` -> ``mp4``)."""
    return kind.partition(" ")[0]


class ClientTally:
    """One camera's readers by (output, stream read), and the totals of those that left."""

    def __init__(self) -> None:
        """Start with no readers and zero totals."""
        self._live: dict[Member, tuple[str, str]] = {}
        self._left: dict[tuple[str, str], Totals] = {}
        self._lags: dict[str, LagBuckets] = {}

    def __len__(self) -> int:
        """Return the number of live readers."""
        return len(self._live)

    def join(self, member: Member, stream: str) -> None:
        """Count ``member``, a new reader of ``stream`` (a stream or rendition kind)."""
        key = (output_of(member.kind), stream)
        self._live[member] = key
        self._left.setdefault(key, Totals()).joined += 1

    def leave(self, member: Member) -> None:
        """Keep ``member``'s counters in its key's totals and forget it; idempotent."""
        key = self._live.pop(member, None)
        if key is not None:
            self._left[key].add(member)

    def totals(self) -> dict[tuple[str, str], Totals]:
        """Return the totals per (output, stream): readers gone plus readers live."""
        out = {
            key: Totals(t.joined, t.delivered, t.skipped, t.cuts) for key, t in self._left.items()
        }
        for member, key in self._live.items():
            out[key].add(member)
        return out

    def sample(self) -> None:
        """Put every live reader's current lag into its output's histogram."""
        for member, (output, _) in self._live.items():
            buckets = self._lags.get(output)
            if buckets is None:
                buckets = self._lags[output] = LagBuckets()
            buckets.observe(member.lag_ns / NS_PER_SECOND)

    def lags(self) -> Iterator[tuple[str, LagBuckets]]:
        """Yield (output, histogram) of every output sampled so far."""
        yield from self._lags.items()
