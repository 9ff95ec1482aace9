"""Frame fan-out with cut points: MPEG-2 (and its prebuffer), audio, encoded renditions.

MPEG-2, audio and encoded video are not latest-wins images: a client gets every frame
in order, and when it falls behind (``maxlag``, else ``client_buffer_bytes``) it is cut
forward to the newest cut point (a keyframe: a frame with ``frame.cut``; audio: every
part), so what it receives always decodes (DESIGN §6). The ring is also the MPEG-2
prebuffer (``buffer.cgi?prebuffer=N``, VAPIX §5.3.3). It knows nothing about sockets and
reads no clock; an endpoint drives one :class:`~gateway.hub.cursor.Cursor` per client,
as a byte stream (``take``/``check``, below) or frame by frame (``take_frames`` and
``check_frames``: fMP4, LL-HLS, WebRTC)::

    start = ring.cut_near(ring.newest.received_ns - prebuffer_ns) if prebuffer else None
    with ring.subscribe(start if start is not None else "newest_cut",
                        maxlag_ns=None if maxlag is None else maxlag * 1_000_000,
                        max_buffer_bytes=limits.client_buffer_bytes) as cur:
        # X-Prebuffer-Length: cur.provided_ns / 1e9
        while await cur.wait():
            bufs = cur.take(256 * 1024)         # the frames' own payload objects
            await write_all(sock, bufs)         # os.writev / loop.sock_sendall ...
            cur.check(siocoutq(sock) + unsent, time.monotonic_ns())

Positions (``seq``) count the frames published to this ring, from 0; they are not
``Frame.seq``, which restarts with every upstream connection. A cursor reads the ring
through its public methods only (``frame_at``, ``offset``, ``cut_at_or_after``,
``wait_for``, ``arm``...), and the ring calls nothing of a cursor's but ``snapshot``
and the listener a parked cursor registered.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from typing import Literal

from gateway.errors import LocalProtocolError
from gateway.hub.cursor import Cursor
from gateway.hub.stream import StreamFullError
from gateway.hub.tally import ClientTally
from gateway.media import NS_PER_SECOND, Frame, StreamKind

#: Called after every publish, and once when the ring closes (``Ring.arm``).
Listener = Callable[[], None]


def has_cut(frame: Frame) -> bool:
    """Return True if a client may start at ``frame``: it is a keyframe (``frame.cut``)."""
    return frame.cut is not None


def every_frame(frame: Frame) -> bool:
    """Return True: every audio part is a cut point."""
    return True


class Ring:
    """The recent frames of one camera stream by position, and the cursors reading them."""

    def __init__(
        self,
        kind: StreamKind | str = StreamKind.MPEG2,
        *,
        name: str = "",
        seconds: float = 10.0,
        max_bytes: int = 64 * 2**20,
        max_subscribers: int | None = None,
        is_cut: Callable[[Frame], bool] | None = None,
        max_gop_bytes: int | None = None,
        on_keyframe_request: Callable[[], None] | None = None,
        on_members: Callable[[], None] | None = None,
        tally: ClientTally | None = None,
    ) -> None:
        """Create a ring.

        ``seconds`` (config ``mpeg2_prebuffer_seconds``) and ``max_bytes`` bound what is
        held: whole GOPs are evicted from the front while the held span (``held_ns``)
        exceeds ``seconds`` or the held bytes exceed ``max_bytes``; the newest GOP is
        never evicted (``oversize_gops`` counts GOPs that alone exceeded ``max_bytes``)
        unless it grows past ``max_gop_bytes`` (default four times ``max_bytes``): a camera that
        never sends another cut point must not grow the ring without bound, so the GOP
        loses its cut point (``truncated_gops``) and is trimmed from the front like a
        stream without cut points; clients then join at the next cut point.
        ``is_cut`` says where a client may start; the default is ``every_frame`` for
        audio and ``has_cut`` otherwise. ``on_keyframe_request`` is the producer's
        (see ``set_keyframe_source``); ``on_members`` is called after a cursor was added
        or left (an on-demand camera's upstream); ``tally`` (the camera's) counts the
        cursors.
        """
        if seconds < 0 or max_bytes < 0:
            raise LocalProtocolError("seconds and max_bytes must be >= 0")
        self.kind = kind
        #: What the ring carries, for the API: a camera stream kind or a rendition kind.
        self.label = kind.value if isinstance(kind, StreamKind) else kind
        self.name = name
        self._tally = tally
        self.is_cut = is_cut or (every_frame if kind is StreamKind.AUDIO else has_cut)
        self._seconds_ns = int(seconds * NS_PER_SECOND)
        self._max_bytes = max_bytes
        self._max_gop_bytes = 4 * max_bytes if max_gop_bytes is None else max_gop_bytes
        self._max_subscribers = max_subscribers
        self._frames: deque[Frame] = deque()
        #: Byte offset (bytes published before it) of each held frame, parallel to _frames.
        self._starts: deque[int] = deque()
        #: Positions of the held cut points, ascending.
        self._cuts: deque[int] = deque()
        self._first = 0
        self._total = 0
        self._held = 0
        self._oversize_cut = -1
        self._connection_start = 0
        self._keyframe_source = on_keyframe_request
        self._on_members = on_members
        self._cursors: dict[Cursor, None] = {}
        # One future per event, shared by every waiting cursor: publish costs the same
        # whatever the number of cursors (STYLE §3).
        self._data_fut: asyncio.Future[None] | None = None
        self._cut_fut: asyncio.Future[None] | None = None
        #: Parked cursors' listeners (``Cursor.set_deliver``): publish hands them the new
        #: frame directly instead of waking their coroutine.
        self._armed: dict[Listener, None] = {}
        #: True after ``close``.
        self.closed = False
        #: Frames published since creation.
        self.frames_published = 0
        #: Frames evicted from the front (whole GOPs, or frames before any cut point).
        self.evicted_frames = 0
        #: GOPs kept although they alone held more than ``max_bytes``.
        self.oversize_gops = 0
        #: GOPs that grew past ``max_gop_bytes`` and were trimmed (their cut point lost).
        self.truncated_gops = 0
        #: Keyframe requests passed on to the producer.
        self.keyframe_requests = 0

    # -- publishing ------------------------------------------------------------------

    def publish(self, frame: Frame) -> None:
        """Append ``frame``, evict what falls out of the bounds, wake waiters; never waits."""
        if self.closed:
            raise LocalProtocolError("publish() on a closed ring")
        seq = self._first + len(self._frames)
        if frame.seq == 0 and self.frames_published:
            # A new upstream connection: its bytes do not continue the old ones (an open
            # GOP's leading pictures would reference pictures of the old connection), so
            # every reader joins again at the new connection's first cut point.
            self._connection_start = seq
        size = len(frame.payload)
        self._frames.append(frame)
        self._starts.append(self._total)
        self._total += size
        self._held += size
        self.frames_published += 1
        if self.is_cut(frame):
            if not self._cuts:
                # Frames before the first cut point cannot be joined: no client needs them.
                self._drop_before(seq)
            self._cuts.append(seq)
            self._cut_fut = _resolve(self._cut_fut)
        self._evict(frame.received_ns)
        if self._armed:
            for listener in tuple(self._armed):
                listener()
        self._data_fut = _resolve(self._data_fut)

    def _evict(self, newest_ns: int) -> None:
        frames, cuts = self._frames, self._cuts
        while True:
            over_bytes = self._held > self._max_bytes
            if not cuts:
                # Nothing joinable is held; keep the bounds frame by frame.
                if len(frames) > 1 and (
                    over_bytes or newest_ns - frames[0].received_ns > self._seconds_ns
                ):
                    self._drop_before(self._first + 1)
                    continue
                return
            oldest_cut = frames[cuts[0] - self._first]
            if not over_bytes and newest_ns - oldest_cut.received_ns <= self._seconds_ns:
                return
            if len(cuts) == 1:
                if over_bytes and self._oversize_cut != cuts[0]:
                    self._oversize_cut = cuts[0]
                    self.oversize_gops += 1
                if self._held > self._max_gop_bytes:
                    cuts.popleft()  # the frames are now bounded one by one (above)
                    self.truncated_gops += 1
                    continue
                return
            cuts.popleft()
            self._drop_before(cuts[0])

    def clear(self) -> None:
        """Drop every held frame: the connection closed; the next one starts afresh.

        For a ring without cursors (an on-demand camera's stream closed when its last
        reader was long gone); positions go on from ``next_seq``.
        """
        self._first = self.next_seq
        self._frames.clear()
        self._starts.clear()
        self._cuts.clear()
        self._held = 0

    def _drop_before(self, seq: int) -> None:
        frames, starts = self._frames, self._starts
        while self._first < seq:
            self._held -= len(frames.popleft().payload)
            starts.popleft()
            self._first += 1
            self.evicted_frames += 1

    # -- looking up ------------------------------------------------------------------

    @property
    def first_seq(self) -> int:
        """Return the position of the oldest held frame (``next_seq`` if none is held)."""
        return self._first

    @property
    def next_seq(self) -> int:
        """Return the position the next published frame will get."""
        return self._first + len(self._frames)

    @property
    def newest(self) -> Frame | None:
        """Return the newest frame, or None before the first (or after eviction of all)."""
        return self._frames[-1] if self._frames else None

    @property
    def newest_cut(self) -> int | None:
        """Return the position of the newest held cut point, or None."""
        return self._cuts[-1] if self._cuts else None

    @property
    def bytes(self) -> int:
        """Return the payload bytes held."""
        return self._held

    @property
    def held_ns(self) -> int:
        """Return how far back a client can start: newest minus oldest cut ``received_ns``."""
        if not self._cuts:
            return 0
        oldest = self._frames[self._cuts[0] - self._first]
        return self._frames[-1].received_ns - oldest.received_ns

    def get(self, seq: int) -> Frame | None:
        """Return the frame at position ``seq``, or None if it is not held."""
        i = seq - self._first
        return self._frames[i] if 0 <= i < len(self._frames) else None

    def frame_at(self, seq: int) -> Frame:
        """Return the held frame at position ``seq``; LocalProtocolError if it is not held."""
        i = seq - self._first
        if not 0 <= i < len(self._frames):
            raise LocalProtocolError(f"position {seq} is not held")
        return self._frames[i]

    def offset(self, seq: int) -> int:
        """Return the bytes published before position ``seq`` (a held position or the next)."""
        i = seq - self._first
        if i == len(self._starts):
            return self._total
        if not 0 <= i < len(self._starts):
            raise LocalProtocolError(f"position {seq} is not held")
        return self._starts[i]

    def cut_at_or_after(self, seq: int) -> int | None:
        """Return the first held cut point at or after position ``seq``, or None."""
        cuts = self._cuts
        i = bisect_left(cuts, seq)
        return cuts[i] if i < len(cuts) else None

    @property
    def connection_start(self) -> int:
        """Return the position of the newest upstream connection's first frame.

        A frame whose ``Frame.seq`` is 0 after others starts a new connection: what
        follows does not continue what came before, so every reader joins again there.
        """
        return self._connection_start

    def cut_near(self, t_ns: int) -> int | None:
        """Return the held cut point whose ``received_ns`` is nearest ``t_ns`` (older on ties)."""
        cuts = self._cuts
        if not cuts:
            return None
        frames, first = self._frames, self._first
        i = bisect_left(cuts, t_ns, key=lambda s: frames[s - first].received_ns)
        if i == len(cuts):
            return cuts[-1]
        if i == 0:
            return cuts[0]
        before, after = cuts[i - 1], cuts[i]
        d_before = t_ns - frames[before - first].received_ns
        d_after = frames[after - first].received_ns - t_ns
        return after if d_after < d_before else before

    # -- cursors ---------------------------------------------------------------------

    def subscribe(
        self,
        start: Literal["newest_cut"] | int = "newest_cut",
        *,
        maxlag_ns: int | None = None,
        max_buffer_bytes: int = 4_000_000,
        kind: str = "",
        remote: str = "",
    ) -> Cursor:
        """Add a cursor starting at ``start`` (the newest cut point, or a held position).

        A cursor starts at the first cut point at or after ``start`` (waiting for one if
        none is held). ``maxlag_ns`` is the client's ``maxlag`` (values below 500 ms mean
        500 ms); without it ``max_buffer_bytes`` (config ``client_buffer_bytes``) bounds
        the bytes it may be behind. Raises ``StreamFullError`` at ``max_subscribers``.
        """
        if self.closed:
            raise LocalProtocolError("subscribe() on a closed ring")
        if self._max_subscribers is not None and len(self._cursors) >= self._max_subscribers:
            raise StreamFullError(f"stream has {self._max_subscribers} subscribers already")
        if start == "newest_cut":
            pos = self._cuts[-1] if self._cuts else self.next_seq
        elif isinstance(start, int) and self._first <= start <= self.next_seq:
            pos = start
        else:
            raise LocalProtocolError(f"start {start!r} is not a held position")
        cur = Cursor(
            self,
            pos,
            maxlag_ns=maxlag_ns,
            max_buffer_bytes=max_buffer_bytes,
            kind=kind or self.label,
            remote=remote,
        )
        self._cursors[cur] = None
        if self._tally is not None:
            self._tally.join(cur, self.label)
        if self._on_members is not None:
            self._on_members()
        return cur

    def __len__(self) -> int:
        return len(self._cursors)

    def __iter__(self) -> Iterator[Cursor]:
        return iter(tuple(self._cursors))

    def snapshot(self) -> list[dict[str, object]]:
        """Return the ``/api/cameras`` ``clients`` entries of this ring."""
        return [cur.snapshot() for cur in self._cursors]

    def close(self) -> None:
        """End the ring: every cursor drains what is pending, then ``wait`` returns False."""
        if self.closed:
            return
        self.closed = True
        self.wake_waiters()
        for listener in tuple(self._armed):
            listener()

    # -- what cursors call -----------------------------------------------------------

    def discard(self, cur: Cursor) -> None:
        """Forget ``cur`` (``Cursor.close`` calls this)."""
        if cur in self._cursors:
            del self._cursors[cur]
            if self._tally is not None:
                self._tally.leave(cur)
            if self._on_members is not None:
                self._on_members()

    def wait_for(self, *, cut: bool) -> asyncio.Future[None]:
        """Return the future resolved by the next publish (``cut``: of a cut point) or close.

        It is shared by every waiter: never cancel it, and expect it to be cancelled by
        another waiter's cancellation (``Cursor.wait`` shows how).
        """
        fut = self._cut_fut if cut else self._data_fut
        if fut is None or fut.done():
            fut = asyncio.get_running_loop().create_future()
            if cut:
                self._cut_fut = fut
            else:
                self._data_fut = fut
        return fut

    def wake_waiters(self) -> None:
        """Resolve the shared futures now: every waiting cursor looks at its state again."""
        self._data_fut = _resolve(self._data_fut)
        self._cut_fut = _resolve(self._cut_fut)

    def arm(self, listener: Listener) -> None:
        """Call ``listener`` after every publish and once on close, until ``disarm``.

        A parked cursor's writer takes new frames this way (``Cursor.set_deliver``). The
        listener runs inside ``publish``: it must not raise, wait or publish.
        """
        self._armed[listener] = None

    def disarm(self, listener: Listener) -> None:
        """Stop calling ``listener``; idempotent."""
        self._armed.pop(listener, None)

    # -- keyframes -------------------------------------------------------------------

    def set_keyframe_source(self, on_keyframe_request: Callable[[], None] | None) -> None:
        """Register the producer's keyframe request callback (None: there is none).

        The producer (an encoder) rate-limits requests itself; a camera's own stream
        cannot make keyframes on demand, so its ring has none.
        """
        self._keyframe_source = on_keyframe_request

    def request_keyframe(self) -> None:
        """Ask the producer for a keyframe now (synchronously); a no-op without one."""
        source = self._keyframe_source
        if source is not None and not self.closed:
            self.keyframe_requests += 1
            source()


def _resolve(fut: asyncio.Future[None] | None) -> asyncio.Future[None] | None:
    """Wake everything awaiting ``fut``; return None, the ring's next future slot."""
    if fut is not None and not fut.done():
        fut.set_result(None)
    return None
