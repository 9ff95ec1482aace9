"""A camera's renditions: producers started on first use, shared, stopped after a linger.

A rendition is what a camera's media becomes for some outputs: a JPEG variant at
another size, the H.264 encode, the decoded PCM, the AAC or Opus encode. Each is made
by a producer in ``gateway/transcode`` (a worker thread) that reads one of the
camera's sources (or another rendition) and publishes into an output that readers
read (a hub ``Stream`` or ``Ring``). The registry here knows nothing about codecs: it
keys renditions by ``RenditionKey(kind, params)``, starts one through the kind's
factory on the first ``acquire``, counts the claims, and stops it ``linger`` seconds
after the last claim is released (DESIGN §2, §6 "Encode once").

Claims are also what an on-demand camera's upstream follows (``consumers``): each
kind names the camera source it reads, and a rendition's consumers are the claims on
it that readers hold, plus the consumers of every rendition holding a claim on it (an
AAC encode claims the decoded PCM while it runs; it consumes the camera's audio only
while its own readers claim it, not while it lingers).

Time is an argument: ``get_timer``/``handle_timer`` with the registry's clock; the
owner arms a loop timer (``arm``) or a test drives a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar, cast

from gateway.errors import CapacityError, LocalProtocolError
from gateway.media import StreamKind

_log = logging.getLogger(__name__)


class Rendition(Protocol):
    """A running producer and the output its readers read."""

    def stop(self) -> None:
        """Stop taking input and end the output; the worker finishes its current job."""

    async def wait_stopped(self) -> None:
        """Wait until the producer's worker holds nothing."""

    def busy(self) -> bool:
        """Return True while the producer's worker still holds input."""
        ...

    def stats(self) -> dict[str, object]:
        """Return the rendition's figures for ``/api`` (state and consumers are added)."""
        ...

    def consumers(self) -> int:
        """Return how many readers read the output now."""
        ...

    def upstream_fps(self) -> tuple[StreamKind, float | None] | None:
        """Return (source read, fps needed, None: every frame), or None: nothing needed now."""
        ...


R = TypeVar("R", bound=Rendition)


@dataclass(frozen=True, slots=True)
class RenditionKey(Generic[R]):
    """What a reader asks a camera for: a kind (``jpeg``, ``h264``, ``pcm``) and parameters."""

    #: The rendition kind; selects the factory.
    kind: str
    #: Hashable parameters within the kind (e.g. ``ImageParams``, an output size).
    params: Hashable = None

    def describe(self) -> str:
        """Return a short label for logs and the API."""
        if self.params is None:
            return self.kind
        describe = getattr(self.params, "describe", None)
        label = describe() if callable(describe) else str(self.params)
        return f"{self.kind} {label}"


#: Builds a rendition for a key (the factory of one kind).
Factory = Callable[[RenditionKey[Any]], Rendition]


@dataclass(frozen=True, slots=True)
class RenditionSpec:
    """How the renditions of one kind are made and bounded."""

    #: Builds a running rendition.
    factory: Factory
    #: Seconds an unused rendition keeps running before it stops (0: at once).
    linger: float = 2.0
    #: Renditions of this kind alive at once (in use or lingering).
    max_live: int = 8
    #: What the renditions are called in a refusal ("too many <noun> in use ...").
    noun: str = ""
    #: What a refusal suggests, after "(limit N)".
    hint: str = ""
    #: The camera source the kind reads directly, or None: it reads another rendition.
    source: StreamKind | None = None


class CapacityExceededError(CapacityError):
    """A request needs a new rendition but its kind is at ``max_live``."""


@dataclass(slots=True)
class _Live:
    """One running rendition and who is using it."""

    rendition: Rendition
    #: Claims not yet released.
    refs: int = 0
    #: When an unused rendition stops (registry clock), or None while in use.
    deadline: float | None = None
    #: Claims held by other renditions (started while this one was), by holder.
    holders: dict[RenditionKey[Any], int] = field(default_factory=dict)


class RenditionHandle(Generic[R]):
    """One reader's claim on a shared rendition; release it (or use ``with``) when done."""

    __slots__ = ("_registry", "_released", "holder", "key", "rendition")

    def __init__(
        self,
        registry: Renditions,
        key: RenditionKey[R],
        rendition: R,
        holder: RenditionKey[Any] | None = None,
    ) -> None:
        """Bind the claim (the registry creates handles)."""
        self._registry = registry
        self._released = False
        self.key = key
        self.rendition = rendition
        #: The rendition holding the claim (acquired while it started), or None: a reader.
        self.holder = holder

    @property
    def released(self) -> bool:
        """Return True once released."""
        return self._released

    def release(self) -> None:
        """Give the claim back (idempotent)."""
        if not self._released:
            self._released = True
            self._registry._release(self.key, self.rendition, self.holder)

    def __enter__(self) -> RenditionHandle[R]:
        """Return the handle."""
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Release the handle."""
        self.release()


class Renditions:
    """The running renditions of one camera, by key, refcounted, with a linger."""

    def __init__(
        self,
        specs: Mapping[str, RenditionSpec],
        *,
        clock: Callable[[], float],
        on_change: Callable[[], None] | None = None,
        on_claims: Callable[[], None] | None = None,
    ) -> None:
        """Create an empty registry.

        :param specs: the kinds this camera can make, by kind.
        :param clock: seconds, monotonic (the owner's loop time, or a fake clock).
        :param on_change: called after a rendition started or stopped (upstream rate).
        :param on_claims: called after a claim was made or released (``consumers``).
        """
        for kind, spec in specs.items():
            if spec.max_live < 1 or spec.linger < 0:
                raise LocalProtocolError(f"rendition kind {kind}: max_live >= 1, linger >= 0")
        self._specs = dict(specs)
        self._clock = clock
        self._on_change = on_change
        self._on_claims = on_claims
        self._live: dict[RenditionKey[Any], _Live] = {}
        #: The renditions being made (a factory may claim others), innermost last.
        self._starting: list[RenditionKey[Any]] = []
        self._stopping: set[Rendition] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        #: Renditions started / stopped since creation, by kind.
        self.started: dict[str, int] = dict.fromkeys(specs, 0)
        self.stopped: dict[str, int] = dict.fromkeys(specs, 0)

    def __len__(self) -> int:
        """Return the number of live renditions (in use or lingering)."""
        return len(self._live)

    def kinds(self) -> frozenset[str]:
        """Return the kinds this camera can make."""
        return frozenset(self._specs)

    def acquire(self, key: RenditionKey[R]) -> RenditionHandle[R]:
        """Return a claim on the rendition for ``key``, starting it if needed.

        Raises ``CapacityExceededError`` when the kind has ``max_live`` renditions in
        use, and LocalProtocolError for a kind this camera cannot make.
        """
        if self._closed:
            raise LocalProtocolError("the camera's renditions are closed")
        live = self._live.get(key)
        if live is None:
            live = self._start(key)
        live.refs += 1
        live.deadline = None
        holder = self._starting[-1] if self._starting else None
        if holder is not None:
            live.holders[holder] = live.holders.get(holder, 0) + 1
        if self._on_claims is not None:
            self._on_claims()
        return RenditionHandle(self, key, cast(R, live.rendition), holder)

    def get(self, key: RenditionKey[R]) -> R | None:
        """Return the live rendition for ``key`` (in use or lingering), or None."""
        live = self._live.get(key)
        return None if live is None else cast(R, live.rendition)

    def live(self, kind: str | None = None) -> Iterator[tuple[RenditionKey[Any], Rendition, int]]:
        """Yield (key, rendition, claims) of the live renditions (of ``kind``)."""
        for key, live in tuple(self._live.items()):
            if kind is None or key.kind == kind:
                yield key, live.rendition, live.refs

    def consumers(self) -> dict[StreamKind, int]:
        """Return, per camera source, the readers' claims on the renditions reading it."""
        out: dict[StreamKind, int] = {}
        for key, live in self._live.items():
            source = self._specs[key.kind].source
            if source is not None:
                out[source] = out.get(source, 0) + self._consumers(live)
        return out

    def _consumers(self, live: _Live) -> int:
        # A holder stands for its own consumers (none while it lingers).
        count = live.refs - sum(live.holders.values())
        for holder in live.holders:
            inner = self._live.get(holder)
            if inner is not None:
                count += self._consumers(inner)
        return count

    def _release(
        self, key: RenditionKey[Any], rendition: Rendition, holder: RenditionKey[Any] | None
    ) -> None:
        live = self._live.get(key)
        if live is None or live.rendition is not rendition:
            return  # already stopped (closed)
        live.refs -= 1
        if holder is not None:
            left = live.holders.pop(holder, 0) - 1
            if left > 0:
                live.holders[holder] = left
        self._released(key, live)
        if self._on_claims is not None:
            self._on_claims()

    def _released(self, key: RenditionKey[Any], live: _Live) -> None:
        if live.refs:
            return
        linger = self._specs[key.kind].linger
        if linger == 0:
            self._stop(key)
            return
        live.deadline = self._clock() + linger
        self.arm()

    # -- timer -------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """Return when the next unused rendition is due to stop (registry clock), or None."""
        deadlines = [live.deadline for live in self._live.values() if live.deadline is not None]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> None:
        """Stop every unused rendition whose linger ended at or before ``now``."""
        for key, live in tuple(self._live.items()):
            if live.deadline is not None and live.deadline <= now:
                self._stop(key)

    def arm(self) -> None:
        """(Re)schedule a loop timer for the earliest linger (needs a running loop)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.get_timer()
        if due is None or self._closed:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(due - self._clock(), 0.0), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.handle_timer(self._clock())
        self.arm()

    def stop_unused(self) -> None:
        """Stop every rendition nobody claims now, without waiting for its linger.

        An on-demand camera's stream closed: what lingers would only hold stale frames.
        Stopping one may release its claims on others, which then stop too.
        """
        while idle := [key for key, live in self._live.items() if not live.refs]:
            for key in idle:
                live = self._live.get(key)
                if live is not None and not live.refs:
                    self._stop(key)

    # -- state -------------------------------------------------------------------------

    def stats(self, kind: str | None = None) -> list[dict[str, object]]:
        """Return each live rendition (of ``kind``) with its state, claims and figures."""
        out: list[dict[str, object]] = []
        for key, rendition, refs in self.live(kind):
            entry: dict[str, object] = {
                "kind": key.kind,
                "params": key.describe().partition(" ")[2] or None,
                "state": "active" if refs else "lingering",
                "claims": refs,
                "consumers": rendition.consumers(),
            }
            entry.update(rendition.stats())
            out.append(entry)
        return out

    async def aclose(self) -> None:
        """Stop every rendition and wait for the workers to finish their job."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for key in tuple(self._live):
            self._stop(key)
        for rendition in tuple(self._stopping):
            await rendition.wait_stopped()
        self._stopping.clear()

    def _start(self, key: RenditionKey[Any]) -> _Live:
        spec = self._specs.get(key.kind)
        if spec is None:
            raise LocalProtocolError(f"this camera makes no {key.kind} rendition")
        same = [(live.deadline, k) for k, live in self._live.items() if k.kind == key.kind]
        if len(same) >= spec.max_live:
            idle = [(deadline, k) for deadline, k in same if deadline is not None]
            if not idle:
                raise CapacityExceededError(
                    f"too many {spec.noun or key.kind + ' renditions'} in use for this camera "
                    f"(limit {spec.max_live}){spec.hint}"
                )
            self._stop(min(idle, key=lambda item: item[0])[1])
        self._starting.append(key)
        try:
            rendition = spec.factory(key)
        finally:
            self._starting.pop()
        live = self._live[key] = _Live(rendition)
        self.started[key.kind] += 1
        _log.debug("rendition %s started", key.describe())
        if self._on_change is not None:
            self._on_change()
        return live

    def _stop(self, key: RenditionKey[Any]) -> None:
        live = self._live.pop(key)
        live.rendition.stop()
        self._stopping = {r for r in self._stopping if r.busy()}
        if live.rendition.busy():
            self._stopping.add(live.rendition)
        self.stopped[key.kind] += 1
        _log.debug("rendition %s stopped", key.describe())
        if self._on_change is not None:
            self._on_change()
