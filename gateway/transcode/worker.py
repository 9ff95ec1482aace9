"""Codec work in one thread per producer: bounded input, outputs back on the loop in order.

A ``Worker`` runs a blocking job (decode, transform, encode) over the inputs the loop
submits, one at a time, in its own thread (STYLE §4: aiortc runs ``encoder.encode`` in
an executor). The loop never waits: inputs wait in a bounded pending queue whose
``InputPolicy`` says what an overload costs. ``Listeners`` fans one worker's outputs out
to several consumers (a level meter, an AAC and an Opus encoder on one audio decoder).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from gateway.errors import LocalProtocolError, RemoteProtocolError

_log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")
T = TypeVar("T")

#: What a ``logger`` argument may be (a per-camera ``LoggerAdapter`` carries its id).
AnyLogger = logging.Logger | logging.LoggerAdapter[logging.Logger]


class InputPolicy(enum.Enum):
    """What happens to pending inputs when more arrive than ``max_pending``."""

    #: A newer input replaces the oldest pending one (counted as skipped): stale
    #: pictures are worth nothing, so a slow encoder works on the newest.
    LATEST = "latest"
    #: Inputs queue up; one more than the bound drops the oldest (counted) and the next
    #: job runs with ``reset=True``: a stateful decoder must not splice across a hole.
    FIFO = "fifo"


#: Pending inputs allowed by default: one newest picture, or about a second of audio.
DEFAULT_MAX_PENDING: Final[dict[InputPolicy, int]] = {InputPolicy.LATEST: 1, InputPolicy.FIFO: 16}


@dataclass(slots=True)
class WorkerCounters:
    """What one worker did, for ``/api`` and ``/metrics`` (updated on the loop thread)."""

    #: Inputs submitted.
    items_in: int = 0
    #: Outputs handed to ``on_output``.
    items_out: int = 0
    #: Inputs dropped unseen: pushed out of the pending queue, or pending at ``close``.
    skipped: int = 0
    #: Inputs whose job raised (bad input, or a bug in the job).
    failed: int = 0
    #: Jobs finished (with outputs, without, or failed), after which the counters count.
    jobs: int = 0
    #: Worker time spent in jobs, nanoseconds.
    busy_ns_total: int = 0
    #: Worker time of the most recent job, nanoseconds.
    busy_ns_last: int = 0
    #: Why the most recent failed input was dropped.
    last_error: str | None = None

    def snapshot(self) -> dict[str, object]:
        """Return the counters as a JSON-ready dict (with mean job milliseconds)."""
        return {
            "items_in": self.items_in,
            "items_out": self.items_out,
            "skipped": self.skipped,
            "failed": self.failed,
            "busy_ms_mean": self.busy_ms_mean,
            "busy_ms_last": round(self.busy_ns_last / 1e6, 3),
            "busy_seconds_total": self.busy_ns_total / 1e9,
            "last_error": self.last_error,
        }

    @property
    def busy_ms_mean(self) -> float:
        """Return the mean worker time per finished job, milliseconds (3 decimals)."""
        return round(self.busy_ns_total / self.jobs / 1e6, 3) if self.jobs else 0.0


@dataclass(frozen=True, slots=True)
class _Outcome(Generic[Out]):
    """What the worker thread hands back to the loop for one input."""

    #: The job's outputs (empty when it failed).
    outputs: Sequence[Out]
    #: What the job raised, if anything.
    error: BaseException | None
    #: Worker time spent, nanoseconds.
    elapsed_ns: int


class Worker(Generic[In, Out]):
    """Runs a blocking job over submitted inputs in one thread; outputs reach the loop in order.

    One input is in the worker at a time; at most ``max_pending`` more wait on the loop
    thread under ``policy``. When a job ends, the next pending input is started before
    its outputs are delivered (the worker stays busy while consumers run). A job that
    raises ``RemoteProtocolError`` drops its input (counted, debug log); any other
    exception is a bug: logged as an error with its traceback, counted, and the worker
    goes on with the next input. The thread is started with the first input.

    ``on_output`` should not raise: what it raises escapes to the loop's exception
    handler and the job's later outputs are lost (``Listeners`` isolates consumers).
    """

    def __init__(
        self,
        job: Callable[[In, bool], Sequence[Out]],
        on_output: Callable[[Out], None],
        *,
        loop: asyncio.AbstractEventLoop,
        policy: InputPolicy,
        max_pending: int | None = None,
        name: str,
        clock: Callable[[], int] = time.monotonic_ns,
        logger: AnyLogger | None = None,
        counters: WorkerCounters | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        """Create the worker; nothing runs until the first ``submit``.

        :param job: ``(input, reset) -> outputs`` (0..n), run in the worker thread;
            ``reset`` is True after a FIFO drop, when state must start afresh.
        :param on_output: called on the loop thread with each output, in order.
        :param loop: the event loop ``submit`` is called on.
        :param policy: what an input beyond ``max_pending`` costs.
        :param max_pending: inputs that may wait behind the running one (default 1 for
            ``LATEST``, 16 for ``FIFO``).
        :param name: names the thread and the log lines ("transcode r90").
        :param clock: monotonic nanoseconds, for the busy-time counters.
        :param counters: where to count (a subclass that renames the figures for ``/api``).
        :param on_close: run in the worker thread after its last job, once ``close`` is
            called: frees what the jobs held (codec contexts and their threads) at once,
            not whenever the garbage collector breaks the producer's reference cycles.
        """
        pending_bound = DEFAULT_MAX_PENDING[policy] if max_pending is None else max_pending
        if pending_bound < 1:
            raise LocalProtocolError(f"max_pending must be at least 1, got {pending_bound}")
        self.name = name
        self.policy = policy
        self.max_pending = pending_bound
        self.counters = counters if counters is not None else WorkerCounters()
        self._job = job
        self._on_close = on_close
        self._on_output = on_output
        self._loop = loop
        self._clock = clock
        self._log = logger or _log
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=name
        )
        # Loop thread state.
        self._pending: collections.deque[In] = collections.deque()
        self._in_flight: asyncio.Future[None] | None = None
        self._job_future: concurrent.futures.Future[_Outcome[Out]] | None = None
        self._reset_next = False
        self._closed = False

    @property
    def items_held(self) -> int:
        """Return how many inputs are held (in the worker plus pending)."""
        return (self._in_flight is not None) + len(self._pending)

    @property
    def closed(self) -> bool:
        """Return True once ``close`` was called."""
        return self._closed

    def submit(self, item: In) -> None:
        """Queue ``item`` for the job (loop thread; never blocks)."""
        if self._closed:
            raise LocalProtocolError(f"worker {self.name} is closed")
        self.counters.items_in += 1
        if self._in_flight is None:
            self._start(item)
            return
        self._pending.append(item)
        if len(self._pending) > self.max_pending:
            self._pending.popleft()
            self.counters.skipped += 1
            if self.policy is InputPolicy.FIFO:
                self._reset_next = True

    def close(self) -> None:
        """Stop taking inputs; drop pending ones; the thread exits after the current job."""
        if self._closed:
            return
        self._closed = True
        self.counters.skipped += len(self._pending)
        self._pending.clear()
        if self._job_future is not None:
            self._job_future.cancel()  # a job not started yet never runs
            if self._on_close is not None:
                self._executor.submit(self._finish)
        self._executor.shutdown(wait=False)

    async def wait_idle(self) -> None:
        """Wait until no input is held (after ``close``: until the thread has ended)."""
        while self._in_flight is not None:
            await asyncio.wait({self._in_flight})
        if self._closed:
            # The last job has handed back and the thread is only returning; joining it
            # here is a short, bounded block, and no thread outlives the worker.
            self._executor.shutdown(wait=True)

    def _start(self, item: In) -> None:
        """Hand ``item`` to the worker thread (loop thread)."""
        reset, self._reset_next = self._reset_next, False
        waiter = self._loop.create_future()
        self._in_flight = waiter
        job = self._job_future = self._executor.submit(self._run, item, reset)
        job.add_done_callback(lambda done: self._hand_back(done, waiter))

    def _finish(self) -> None:
        """Run ``on_close`` after the last job (worker thread)."""
        assert self._on_close is not None
        try:
            self._on_close()
        except Exception:  # a bug: the thread ends all the same
            self._log.exception("%s could not free what its jobs held", self.name)

    def _run(self, item: In, reset: bool) -> _Outcome[Out]:
        """Run the job on one input, timing it (worker thread)."""
        started = self._clock()
        try:
            outputs = self._job(item, reset)
        except Exception as exc:  # counted and logged on the loop thread
            return _Outcome((), exc, self._clock() - started)
        return _Outcome(outputs, None, self._clock() - started)

    def _hand_back(
        self, job: concurrent.futures.Future[_Outcome[Out]], waiter: asyncio.Future[None]
    ) -> None:
        """Pass a finished job to the loop thread (worker thread, or loop on cancel)."""
        # The only loop method called off the loop thread; a closed loop has nobody to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._done, job, waiter)

    def _done(
        self, job: concurrent.futures.Future[_Outcome[Out]], waiter: asyncio.Future[None]
    ) -> None:
        """Account for the finished job, start the next, deliver its outputs (loop thread)."""
        self._in_flight = None
        if not waiter.done():
            waiter.set_result(None)
        if self._closed or job.cancelled():
            return
        if self._pending:
            # Keep the worker busy before running the consumers' callbacks.
            self._start(self._pending.popleft())
        escaped = job.exception()  # only a BaseException gets past _run
        outcome = job.result() if escaped is None else _Outcome((), escaped, 0)
        counters = self.counters
        counters.jobs += 1
        counters.busy_ns_total += outcome.elapsed_ns
        counters.busy_ns_last = outcome.elapsed_ns
        error = outcome.error
        if isinstance(error, RemoteProtocolError):
            counters.failed += 1
            counters.last_error = str(error)
            self._log.debug("%s dropped an input: %s", self.name, error)
            return
        if error is not None:
            # A bug in the job must not stop the producer: drop the input, go on.
            counters.failed += 1
            counters.last_error = f"{type(error).__name__}: {error}"
            self._log.error("%s failed", self.name, exc_info=error)
            return
        self._deliver(outcome.outputs)

    def _deliver(self, outputs: Sequence[Out]) -> None:
        """Pass one job's outputs to ``on_output``, in order (loop thread)."""
        for output in outputs:
            if self._closed:  # a consumer closed the worker: nothing more is delivered
                return
            self.counters.items_out += 1
            self._on_output(output)


class Listeners(Generic[T]):
    """Fans each value out to several callbacks; one that raises does not stop the others."""

    def __init__(
        self, *, name: str, max_listeners: int = 8, logger: AnyLogger | None = None
    ) -> None:
        """Start with no callback; at most ``max_listeners`` at once."""
        if max_listeners < 1:
            raise LocalProtocolError(f"max_listeners must be at least 1, got {max_listeners}")
        self.name = name
        self.max_listeners = max_listeners
        #: Calls that raised.
        self.errors = 0
        #: The most recent of those, as "Type: message".
        self.last_error: str | None = None
        self._log = logger or _log
        # Replaced, never mutated: a callback may add or remove while values go out.
        self._callbacks: tuple[Callable[[T], None], ...] = ()

    def __len__(self) -> int:
        """Return the number of callbacks."""
        return len(self._callbacks)

    def add(self, callback: Callable[[T], None]) -> Callable[[], None]:
        """Add ``callback``; return what removes it again (idempotent)."""
        if len(self._callbacks) >= self.max_listeners:
            raise LocalProtocolError(f"{self.name} has {self.max_listeners} listeners already")
        self._callbacks = (*self._callbacks, callback)
        removed = False

        def remove() -> None:
            nonlocal removed
            if removed:
                return
            removed = True
            callbacks = list(self._callbacks)
            # By identity: the same function added twice is two listeners.
            index = next(i for i, c in enumerate(callbacks) if c is callback)
            del callbacks[index]
            self._callbacks = tuple(callbacks)

        return remove

    def __call__(self, value: T) -> None:
        """Pass ``value`` to every callback, in the order they were added."""
        for callback in self._callbacks:
            try:
                callback(value)
            except Exception as exc:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._log.exception("%s listener %r failed", self.name, callback)
