"""Worker and Listeners: input policies, order, failures, close, threads, fan-out."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

import pytest

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.transcode import InputPolicy, Listeners, Worker
from gateway.transcode.worker import DEFAULT_MAX_PENDING


class Job:
    """A blocking job that records its calls and waits for the test's gate on each."""

    def __init__(
        self,
        outputs: Callable[[int], Sequence[int]] = lambda item: [item],
        raises: dict[int, Exception] | None = None,
    ) -> None:
        self.gate = threading.Event()
        #: Set as the first job starts (the worker thread is inside it).
        self.entered = threading.Event()
        self.calls: list[tuple[int, bool]] = []
        self.threads: set[int] = set()
        self._outputs = outputs
        self._raises = raises or {}

    def __call__(self, item: int, reset: bool) -> Sequence[int]:
        self.calls.append((item, reset))
        self.threads.add(threading.get_ident())
        self.entered.set()
        assert self.gate.wait(10)
        if item in self._raises:
            raise self._raises[item]
        return self._outputs(item)


class Sink:
    """on_output target recording outputs and the thread each was delivered on."""

    def __init__(self) -> None:
        self.outputs: list[int] = []
        self.threads: set[int] = set()

    def __call__(self, output: int) -> None:
        self.outputs.append(output)
        self.threads.add(threading.get_ident())


def make(
    job: Job, sink: Callable[[int], None], policy: InputPolicy, **kwargs: Any
) -> Worker[int, int]:
    kwargs.setdefault("name", "test-worker")
    return Worker(job, sink, loop=asyncio.get_running_loop(), policy=policy, **kwargs)


@pytest.mark.parametrize(("policy", "bound"), [(InputPolicy.LATEST, 1), (InputPolicy.FIFO, 16)])
async def test_default_bounds(policy: InputPolicy, bound: int) -> None:
    worker = make(Job(), Sink(), policy)
    assert worker.max_pending == DEFAULT_MAX_PENDING[policy] == bound
    assert set(DEFAULT_MAX_PENDING) == set(InputPolicy)
    with pytest.raises(LocalProtocolError, match="max_pending must be at least 1"):
        make(Job(), Sink(), policy, max_pending=0)


async def test_latest_replaces_the_pending_input_and_counts_it() -> None:
    job, sink = Job(), Sink()
    worker = make(job, sink, InputPolicy.LATEST)
    for item in range(5):
        worker.submit(item)
        assert worker.items_held <= 2
    assert worker.items_held == 2
    assert worker.counters.skipped == 3
    job.gate.set()
    await worker.wait_idle()
    assert sink.outputs == [0, 4]
    assert job.calls == [(0, False), (4, False)]  # LATEST never asks for a reset
    counters = worker.counters
    assert (counters.items_in, counters.items_out, counters.skipped, counters.jobs) == (5, 2, 3, 2)
    worker.close()
    await worker.wait_idle()


async def test_fifo_bound_drops_the_oldest_and_flags_the_next_job_reset() -> None:
    job, sink = Job(), Sink()
    worker = make(job, sink, InputPolicy.FIFO, max_pending=2)
    for item in range(5):  # 0 in the worker; 1 and 2 pushed out by 3 and 4
        worker.submit(item)
    assert worker.items_held == 3
    assert worker.counters.skipped == 2
    job.gate.set()
    await worker.wait_idle()
    assert sink.outputs == [0, 3, 4]
    assert job.calls == [(0, False), (3, True), (4, False)]
    worker.close()
    await worker.wait_idle()


async def test_fifo_within_its_bound_keeps_every_input_without_reset() -> None:
    job, sink = Job(), Sink()
    worker = make(job, sink, InputPolicy.FIFO, max_pending=3)
    for item in range(4):
        worker.submit(item)
    job.gate.set()
    await worker.wait_idle()
    assert sink.outputs == [0, 1, 2, 3]
    assert all(not reset for _, reset in job.calls)
    assert worker.counters.skipped == 0
    worker.close()
    await worker.wait_idle()


async def test_several_outputs_per_job_arrive_in_order_on_the_loop_thread() -> None:
    # Input n gives n % 3 outputs: none, one or two (an encoder's 0..n packets).
    job = Job(outputs=lambda item: [10 * item + k for k in range(item % 3)])
    job.gate.set()
    sink = Sink()
    worker = make(job, sink, InputPolicy.FIFO)
    for item in range(6):
        worker.submit(item)
    await worker.wait_idle()
    assert sink.outputs == [10, 20, 21, 40, 50, 51]
    assert sink.threads == {threading.get_ident()}
    assert len(job.threads) == 1
    assert threading.get_ident() not in job.threads
    assert (worker.counters.items_out, worker.counters.jobs) == (6, 6)
    worker.close()
    await worker.wait_idle()


async def test_the_next_input_starts_before_outputs_are_delivered() -> None:
    job = Job()
    job.gate.set()
    held: list[int] = []
    worker: Worker[int, int] = make(job, lambda _: held.append(worker.items_held), InputPolicy.FIFO)
    worker.submit(0)
    worker.submit(1)
    await worker.wait_idle()
    # Output 0 was delivered with input 1 already in the worker; output 1 with none.
    assert held == [1, 0]
    worker.close()
    await worker.wait_idle()


async def test_bad_input_and_bugs_are_counted_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = Job(raises={1: RemoteProtocolError("bad input"), 3: ZeroDivisionError("bug")})
    job.gate.set()
    sink = Sink()
    worker = make(job, sink, InputPolicy.FIFO, name="flaky")
    with caplog.at_level(logging.DEBUG, logger="gateway.transcode.worker"):
        for item in range(2):
            worker.submit(item)
        await worker.wait_idle()
        assert worker.counters.last_error == "bad input"
        for item in range(2, 5):
            worker.submit(item)
        await worker.wait_idle()
    assert sink.outputs == [0, 2, 4]
    counters = worker.counters
    assert (counters.failed, counters.jobs) == (2, 5)
    assert counters.last_error == "ZeroDivisionError: bug"
    # Bad input is a debug line; a bug is one error with its traceback.
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in errors] == ["flaky failed"]
    assert errors[0].exc_info is not None
    assert errors[0].exc_info[0] is ZeroDivisionError
    assert "flaky dropped an input: bad input" in caplog.text
    worker.close()
    await worker.wait_idle()


async def test_busy_time_counters_use_the_injected_clock() -> None:
    ticks = itertools.count(step=1_500_000)  # each job spans one tick: 1.5 ms
    job = Job(raises={1: RemoteProtocolError("bad")})
    job.gate.set()
    worker = make(job, Sink(), InputPolicy.FIFO, clock=lambda: next(ticks))
    for item in range(3):
        worker.submit(item)
    await worker.wait_idle()
    snapshot = worker.counters.snapshot()
    assert snapshot == {
        "items_in": 3,
        "items_out": 2,
        "skipped": 0,
        "failed": 1,
        "busy_ms_mean": 1.5,
        "busy_ms_last": 1.5,
        "busy_seconds_total": 0.0045,
        "last_error": "bad",
    }
    json.dumps(snapshot)
    worker.close()
    await worker.wait_idle()


async def test_close_drops_pending_refuses_input_and_delivers_nothing_more() -> None:
    job, sink = Job(), Sink()
    worker = make(job, sink, InputPolicy.FIFO)
    for item in range(3):
        worker.submit(item)
    worker.close()
    worker.close()  # idempotent
    assert worker.closed
    assert worker.counters.skipped == 2
    with pytest.raises(LocalProtocolError, match="worker test-worker is closed"):
        worker.submit(3)
    waiting = asyncio.ensure_future(worker.wait_idle())
    await asyncio.sleep(0)
    assert not waiting.done()  # the worker is still inside input 0
    job.gate.set()
    await waiting
    assert worker.items_held == 0
    assert sink.outputs == []
    assert job.calls == [(0, False)]


async def test_a_consumer_that_closes_the_worker_gets_no_further_output() -> None:
    job = Job(outputs=lambda item: [item, item, item])
    job.gate.set()
    got: list[int] = []

    def take(output: int) -> None:
        got.append(output)
        worker.close()

    worker = make(job, take, InputPolicy.FIFO)
    worker.submit(0)
    worker.submit(1)
    await worker.wait_idle()
    assert got == [0]
    assert worker.counters.items_out == 1


async def test_no_thread_outlives_close_and_wait_idle() -> None:
    before = set(threading.enumerate())
    never = make(Job(), Sink(), InputPolicy.LATEST, name="never-used")
    never.close()
    await never.wait_idle()
    # Subsets, not equality: a thread an earlier test left behind may end meanwhile.
    assert set(threading.enumerate()) <= before  # no input, no thread
    job = Job()
    worker = make(job, Sink(), InputPolicy.FIFO, name="leak-check")
    for item in range(3):
        worker.submit(item)
    started = set(threading.enumerate()) - before
    assert [t.name.startswith("leak-check") for t in started] == [True]
    assert job.entered.wait(10)
    worker.close()
    job.gate.set()
    await worker.wait_idle()
    assert set(threading.enumerate()) <= before
    assert threading.active_count() <= len(before)


class LoopSpy:
    """Wraps a loop and records which of its methods each thread touches."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.calls: set[tuple[str, int]] = set()

    def __getattr__(self, name: str) -> object:
        self.calls.add((name, threading.get_ident()))
        return getattr(self._loop, name)


async def test_the_worker_thread_only_calls_call_soon_threadsafe() -> None:
    spy = LoopSpy(asyncio.get_running_loop())
    job = Job(outputs=lambda item: [item, item])
    job.gate.set()
    sink = Sink()
    loop = cast(asyncio.AbstractEventLoop, spy)
    worker: Worker[int, int] = Worker(job, sink, loop=loop, policy=InputPolicy.FIFO, name="spy")
    for item in range(3):
        worker.submit(item)
    await worker.wait_idle()
    assert sink.outputs == [0, 0, 1, 1, 2, 2]
    (worker_thread,) = job.threads
    assert {name for name, thread in spy.calls if thread == worker_thread} == {
        "call_soon_threadsafe"
    }
    worker.close()
    await worker.wait_idle()


def test_a_closed_loop_does_not_break_the_worker_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    job = Job()
    worker: Worker[int, int] = Worker(
        job, Sink(), loop=loop, policy=InputPolicy.LATEST, name="orphan"
    )
    worker.submit(0)
    assert job.entered.wait(10)
    worker.close()
    loop.close()  # shutdown: the loop goes before the job ends
    job.gate.set()
    for thread in threading.enumerate():
        if thread.name.startswith("orphan"):
            thread.join(10)
            assert not thread.is_alive()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_listeners_fan_out_in_order_past_a_failing_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listeners: Listeners[int] = Listeners(name="pcm")
    got: list[tuple[str, int]] = []

    def broken(value: int) -> None:
        raise ValueError(f"listener bug {value}")

    listeners.add(lambda v: got.append(("meter", v)))
    listeners.add(broken)
    remove_aac = listeners.add(lambda v: got.append(("aac", v)))
    assert len(listeners) == 3
    listeners(1)
    remove_aac()
    remove_aac()  # idempotent
    listeners(2)
    assert got == [("meter", 1), ("aac", 1), ("meter", 2)]
    assert listeners.errors == 2
    assert listeners.last_error == "ValueError: listener bug 2"
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 2
    assert all(r.exc_info is not None for r in errors)


def test_listeners_may_change_while_a_value_goes_out() -> None:
    listeners: Listeners[int] = Listeners(name="pcm")
    got: list[str] = []
    removers: list[Callable[[], None]] = []

    def once(_: int) -> None:
        got.append("once")
        removers[0]()
        listeners.add(lambda _: got.append("late"))

    removers.append(listeners.add(once))
    listeners.add(lambda _: got.append("steady"))
    listeners(1)  # the listeners as they were when the value went out
    listeners(2)
    assert got == ["once", "steady", "steady", "late"]


def test_listeners_are_bounded_and_the_same_callback_counts_twice() -> None:
    listeners: Listeners[int] = Listeners(name="pcm", max_listeners=2)
    got: list[int] = []
    remove = listeners.add(got.append)
    listeners.add(got.append)
    with pytest.raises(LocalProtocolError, match="pcm has 2 listeners already"):
        listeners.add(got.append)
    listeners(7)
    remove()
    listeners(8)
    assert got == [7, 7, 8]
    with pytest.raises(LocalProtocolError):
        Listeners(name="pcm", max_listeners=0)


async def test_on_close_runs_once_in_the_worker_thread_after_the_last_job() -> None:
    job, sink = Job(), Sink()
    freed: list[tuple[int, int]] = []

    def free() -> None:
        freed.append((threading.get_ident(), len(job.calls)))

    worker = make(job, sink, InputPolicy.FIFO, on_close=free)
    worker.submit(0)
    worker.submit(1)
    assert job.entered.wait(10)
    worker.close()
    worker.close()
    assert freed == []  # not while input 0 is still in the job
    job.gate.set()
    await worker.wait_idle()  # joins the thread: on_close has run
    assert freed == [(next(iter(job.threads)), 1)]  # after input 0, and input 1 never ran


async def test_on_close_of_a_worker_that_never_ran_starts_no_thread() -> None:
    before = set(threading.enumerate())
    freed: list[int] = []
    worker = make(Job(), Sink(), InputPolicy.LATEST, on_close=lambda: freed.append(1))
    worker.close()
    await worker.wait_idle()
    assert freed == []
    assert set(threading.enumerate()) <= before


async def test_a_failing_on_close_is_logged_and_the_thread_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = Job()
    job.gate.set()

    def broken() -> None:
        raise RuntimeError("boom")

    worker = make(job, Sink(), InputPolicy.FIFO, on_close=broken, name="broken-close")
    worker.submit(0)
    assert job.entered.wait(10)
    with caplog.at_level(logging.ERROR):
        worker.close()
        await worker.wait_idle()
    assert "broken-close could not free what its jobs held" in caplog.text
