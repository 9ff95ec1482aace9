"""App-wide figures for ``/metrics``: HTTP responses, shed connections, auth denials, the
process (tasks, threads, memory, descriptors), and the timer that samples client lag.

Responses are counted as they are prepared (``on_response_prepare``), so a stream counts
when it starts, not hours later when it ends, and a refusal raised by a middleware
counts too. Requests aiohttp rejects before routing (a malformed request line) never
reach the application and are not counted here. Labels are bounded: a method outside
the standard ones is ``other``, and a route is named by its family (``ROUTE_FAMILIES``),
never by the path asked for.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.access.http import DENIALS
from gateway.server import CONNECTIONS

if TYPE_CHECKING:
    from gateway.hub import CameraMedia

#: (route path prefix, family): the first entry that a route's canonical path starts
#: with names it; a request that matched no route is ``other``.
ROUTE_FAMILIES = (
    ("/axis-cgi/mjpg/", "mjpeg"),
    ("/mjpg/", "mjpeg"),
    ("/axis-cgi/jpg/", "snapshot"),
    ("/jpg/", "snapshot"),
    ("/axis-cgi/mpeg2/", "mpeg2"),
    ("/axis-cgi/audio/", "audio"),
    ("/mp4/", "mp4"),
    ("/hls/", "hls"),
    ("/whep/", "whep"),
    ("/api/", "api"),
    ("/metrics", "metrics"),
    ("/healthz", "healthz"),
    ("/static", "web"),
    ("/", "web"),
)
#: Methods counted by name (RFC 9110 §9 and PATCH); anything else is ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_family(canonical: str | None) -> str:
    """Return the family of the route whose canonical path is ``canonical`` (None: no route)."""
    if canonical is not None:
        for prefix, family in ROUTE_FAMILIES:
            if canonical == prefix or (prefix != "/" and canonical.startswith(prefix)):
                return family
    return "other"


def method_label(method: str) -> str:
    """Return ``method`` if it is a standard one, else ``other``."""
    return method if method in METHODS else "other"


class HttpCounters:
    """Responses by (method, route family, status)."""

    def __init__(self) -> None:
        """Start with nothing counted."""
        self.responses: Counter[tuple[str, str, str]] = Counter()

    def count(self, method: str, canonical: str | None, status: int) -> None:
        """Count one response to a ``method`` request on the route ``canonical``."""
        self.responses[method_label(method), route_family(canonical), str(status)] += 1


HTTP_COUNTERS = web.AppKey("http_counters", HttpCounters)
#: Connections the HTTP server closed or refused, by reason (``header_timeout``,
#: ``max_connections``...); the server module adds to it.
SHED_CONNECTIONS = web.AppKey("shed_connections", Counter[str])
#: Requests access control turned away (401/403), by reason; access control adds to it.
AUTH_DENIALS = web.AppKey("auth_denials", Counter[str])


async def count_response(request: web.Request, response: web.StreamResponse) -> None:
    """Count ``response`` as it is prepared (``on_response_prepare``)."""
    resource = request.match_info.route.resource
    canonical = None if resource is None else resource.canonical
    request.app[HTTP_COUNTERS].count(request.method, canonical, response.status)


def install(app: web.Application) -> None:
    """Give ``app`` its counters and count its responses."""
    app[HTTP_COUNTERS] = HttpCounters()
    app[SHED_CONNECTIONS] = Counter()
    app[AUTH_DENIALS] = Counter()
    app.on_response_prepare.append(count_response)


class HttpCollector(Collector):
    """Collect ``app``'s response, shed-connection and denial counters at scrape time."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        """Yield one counter family each."""
        responses = CounterMetricFamily(
            "gateway_http_responses",
            "HTTP responses by request method, route family and status",
            labels=["method", "route", "status"],
        )
        for labels, count in sorted(self._app[HTTP_COUNTERS].responses.items()):
            responses.add_metric(list(labels), float(count))
        yield responses
        for counts, name, text in (
            (self._shed(), "gateway_http_connections_shed", "Connections shed, by reason"),
            (
                self._denials(),
                "gateway_auth_denials",
                "Requests denied by access control, by reason",
            ),
        ):
            family = CounterMetricFamily(name, text, labels=["reason"])
            for reason, count in sorted(counts.items()):
                family.add_metric([reason], float(count))
            yield family

    def _shed(self) -> Counter[str]:
        """Return the sheds counted here and by the HTTP server's connection guard."""
        shed: Counter[str] = Counter()
        shed.update(self._app.get(SHED_CONNECTIONS) or {})
        guard = self._app.get(CONNECTIONS)
        if guard is not None:
            totals = guard.stats()["shed"]
            assert isinstance(totals, dict)
            for reason, count in totals.items():
                shed[str(getattr(reason, "value", reason))] += count
        return shed

    def _denials(self) -> Counter[str]:
        """Return the denials counted here and by access control, by reason."""
        denials: Counter[str] = Counter()
        denials.update(self._app.get(AUTH_DENIALS) or {})
        counted = self._app.get(DENIALS)
        if counted is not None:
            for (_status, reason), count in counted.counts.items():
                denials[reason] += count
        return denials


class RuntimeCollector(Collector):
    """Collect the asyncio tasks and threads of the process (what a leak grows)."""

    def collect(self) -> Iterator[Metric]:
        """Yield the task and thread gauges."""
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:  # no running loop (a scrape from a test's thread)
            tasks = 0
        yield GaugeMetricFamily(
            "gateway_process_tasks", "asyncio tasks not done in the gateway's loop", value=tasks
        )
        yield GaugeMetricFamily(
            "gateway_process_threads",
            "Threads of the gateway process",
            value=threading.active_count(),
        )


def collectors(app: web.Application) -> list[Collector]:
    """Return the app-wide collectors: HTTP, runtime and prometheus_client's process one."""
    return [HttpCollector(app), RuntimeCollector(), ProcessCollector(registry=None)]


class LagSampler:
    """Sample the lag of every camera's readers every ``period`` seconds (a loop timer)."""

    def __init__(self, media: Callable[[], Iterable[CameraMedia]], *, period: float = 1.0) -> None:
        """Sample the cameras ``media`` returns at each tick."""
        self._media = media
        self._period = period
        self._timer: asyncio.TimerHandle | None = None

    def sample(self) -> None:
        """Put every live reader's lag into its camera's histogram now."""
        for media in self._media():
            media.tally.sample()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Sample from ``period`` seconds on until ``stop``."""
        self._timer = loop.call_later(self._period, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sample()
        self.start(loop)

    def stop(self) -> None:
        """Stop sampling; idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def sampling_ctx(
    media: Callable[[], Iterable[CameraMedia]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Return a ``cleanup_ctx`` entry that samples ``media``'s lags while the app runs."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        sampler = LagSampler(media)
        sampler.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            sampler.stop()

    return ctx
