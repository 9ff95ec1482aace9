"""Shared sources: media is encoded once per (stream, channel, variant) and read by every client.

A source runs its producer on a fixed schedule, in a worker thread, only while someone
is subscribed (plus a short linger, so a reconnecting client finds it warm). Output
goes into a bounded ring; publishing wakes readers and never waits for any of them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from gateway.sim.encoders import Encoded, Producer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One published unit of a source: a JPEG, an MPEG-2 picture or an audio part."""

    #: Position in the source's output, gap-free from 0.
    index: int
    #: Tick number, the frame counter painted into the picture.
    frame: int
    #: Capture time, unix ns (microsecond resolution, as in the block code).
    t_ns: int
    #: Scheduled capture time on the monotonic clock, ns; evenly spaced.
    mono_ns: int
    #: The encoded bytes.
    data: bytes
    #: True where a client may start decoding.
    key: bool


class SourceClosedError(Exception):
    """The source stopped for good (server shutdown or an encoder failure)."""


class Source:
    """Runs one producer at a fixed interval while it has subscribers."""

    def __init__(
        self,
        name: str,
        make_producer: Callable[[], Producer],
        interval: float,
        *,
        ring: int = 256,
        linger: float = 2.0,
    ) -> None:
        self.name = name
        self.interval = interval
        self._make_producer = make_producer
        self._producer: Producer | None = None
        self._ring: collections.deque[Chunk] = collections.deque(maxlen=ring)
        self._linger = linger
        self._next_index = 0
        self._next_frame = 0
        self._subscribers = 0
        self._idle_since = 0.0
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._closed = False

    @property
    def subscribers(self) -> int:
        """Return the number of current subscribers."""
        return self._subscribers

    @property
    def running(self) -> bool:
        """Return True while the generator task runs."""
        return self._task is not None

    @property
    def latest(self) -> Chunk | None:
        """Return the newest chunk, if any."""
        return self._ring[-1] if self._ring else None

    def subscribe(self) -> None:
        """Count a subscriber in and start producing if idle."""
        if self._closed:
            raise SourceClosedError(self.name)
        self._subscribers += 1
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    def unsubscribe(self) -> None:
        """Count a subscriber out; the generator stops after the linger time."""
        self._subscribers -= 1
        if self._subscribers == 0:
            self._idle_since = time.monotonic()

    def since(self, index: int) -> list[Chunk]:
        """Return the retained chunks from index on (fewer when older ones fell out)."""
        if not self._ring or index > self._ring[-1].index:
            return []
        start = max(index - self._ring[0].index, 0)
        return [self._ring[i] for i in range(start, len(self._ring))]

    async def wait(self, index: int) -> None:
        """Return once a chunk numbered index or later exists."""
        while self._next_index <= index:
            if self._closed:
                raise SourceClosedError(self.name)
            await self._changed.wait()
        if self._closed:
            raise SourceClosedError(self.name)

    @property
    def next_index(self) -> int:
        """Return the index the next published chunk will get."""
        return self._next_index

    async def close(self) -> None:
        """Stop for good and release every reader."""
        self._closed = True
        self._wake()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _wake(self) -> None:
        # set() resolves every current waiter; clearing at once makes it a broadcast.
        self._changed.set()
        self._changed.clear()

    def _tick(self, frame: int, t_ns: int) -> list[Encoded]:
        """Produce one tick in the worker thread."""
        if self._producer is None:
            self._producer = self._make_producer()
        return self._producer.produce(frame, t_ns)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        try:
            while self._subscribers > 0 or time.monotonic() - self._idle_since < self._linger:
                due = start + tick * self.interval
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -self.interval:
                    # Fell behind (slow machine): skip the missed ticks, never burst.
                    tick = math.floor((loop.time() - start) / self.interval)
                    due = start + tick * self.interval
                t_ns = time.time_ns() // 1000 * 1000
                frame, self._next_frame = self._next_frame, self._next_frame + 1
                encoded = await asyncio.to_thread(self._tick, frame, t_ns)
                mono_ns = round(due * 1e9)
                for item in encoded:
                    chunk = Chunk(self._next_index, frame, t_ns, mono_ns, item.data, item.key)
                    self._ring.append(chunk)
                    self._next_index += 1
                if encoded:
                    self._wake()
                tick += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sim source %s failed", self.name)
            self._closed = True
            self._wake()
        self._task = None


class SourceHub:
    """Creates sources on first use, one per key, and closes them all at shutdown."""

    def __init__(self) -> None:
        self._sources: dict[Hashable, Source] = {}

    def get(
        self, key: Hashable, name: str, make_producer: Callable[[], Producer], interval: float
    ) -> Source:
        """Return the source for key, creating it on first use."""
        source = self._sources.get(key)
        if source is None:
            source = self._sources[key] = Source(name, make_producer, interval)
        return source

    @property
    def sources(self) -> list[Source]:
        """Return every source created so far."""
        return list(self._sources.values())

    async def close(self) -> None:
        """Close every source."""
        for source in self._sources.values():
            await source.close()
