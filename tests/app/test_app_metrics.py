"""App-wide /metrics figures: route families, methods, HTTP and runtime collectors, sampler."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from gateway.app import create_app
from gateway.app_metrics import (
    AUTH_DENIALS,
    HTTP_COUNTERS,
    METHODS,
    ROUTE_FAMILIES,
    SHED_CONNECTIONS,
    HttpCollector,
    LagSampler,
    RuntimeCollector,
    install,
    method_label,
    route_family,
)
from gateway.config import parse_config
from gateway.hub import CameraMedia

#: One route of each ROUTE_FAMILIES entry, as the router names it, and its family.
ROUTES = {
    "/axis-cgi/mjpg/video.cgi": "mjpeg",
    "/mjpg/{camera}/video.mjpg": "mjpeg",
    "/axis-cgi/jpg/image.cgi": "snapshot",
    "/jpg/image.jpg": "snapshot",
    "/axis-cgi/mpeg2/buffer.cgi": "mpeg2",
    "/axis-cgi/audio/receive.cgi": "audio",
    "/mp4/{camera}": "mp4",
    "/hls/{camera}/{session}/{name}": "hls",
    "/whep/{camera}/{session}": "whep",
    "/api/cameras": "api",
    "/metrics": "metrics",
    "/healthz": "healthz",
    "/static": "web",
    "/": "web",
}


@pytest.mark.parametrize(("prefix", "family"), ROUTE_FAMILIES)
def test_every_route_family_entry_names_its_routes(prefix: str, family: str) -> None:
    routes = [route for route, named in ROUTES.items() if route.startswith(prefix)]
    assert routes, f"no example route for {prefix!r}"
    assert any(route_family(route) == family for route in routes)


def test_routes_outside_the_table_and_unmatched_requests_are_other() -> None:
    assert route_family(None) == "other"
    assert route_family("/favicon.ico") == "other"  # "/" names only itself
    assert route_family("/metricsx") == "metrics"  # a prefix, as the table says


def test_every_route_the_app_registers_has_a_family() -> None:
    toml = '[[cameras]]\nname = "cam"\nsource = "sim"\nmjpeg = true\n'
    app = create_app(parse_config(toml, {}))
    canonicals = {resource.canonical for resource in app.router.resources()}
    assert {c for c in canonicals if route_family(c) == "other"} == set()


def test_methods_outside_the_standard_set_are_other() -> None:
    for method in METHODS:
        assert method_label(method) == method
    assert method_label("BREW") == "other"
    assert method_label("get") == "other"  # methods are case-sensitive (RFC 9110 §9.1)


def test_http_collector_reads_responses_shed_connections_and_denials() -> None:
    app = web.Application()
    install(app)
    app[HTTP_COUNTERS].count("GET", "/mp4/{camera}", 200)
    app[HTTP_COUNTERS].count("GET", "/mp4/{camera}", 200)
    app[HTTP_COUNTERS].count("PROPFIND", None, 405)
    app[SHED_CONNECTIONS]["header_timeout"] += 3
    app[AUTH_DENIALS]["no_credentials"] += 1
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HttpCollector(app))
    lines = set(generate_latest(registry).decode().splitlines())
    expected = {
        'gateway_http_responses_total{method="GET",route="mp4",status="200"} 2.0',
        'gateway_http_responses_total{method="other",route="other",status="405"} 1.0',
        'gateway_http_connections_shed_total{reason="header_timeout"} 3.0',
        'gateway_auth_denials_total{reason="no_credentials"} 1.0',
    }
    assert expected <= lines, expected - lines


def test_http_collector_without_the_counters_of_other_modules_is_empty() -> None:
    app = web.Application()
    install(app)
    del app[SHED_CONNECTIONS]  # a server module that keeps no counters
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HttpCollector(app))
    text = generate_latest(registry).decode()
    assert "# TYPE gateway_http_connections_shed_total counter" in text
    assert "gateway_http_connections_shed_total{" not in text


async def test_runtime_collector_counts_the_loop_tasks() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RuntimeCollector())

    def tasks() -> float:
        for line in generate_latest(registry).decode().splitlines():
            if line.startswith("gateway_process_tasks "):
                return float(line.split()[1])
        raise AssertionError("no gateway_process_tasks")

    before = tasks()
    stop = asyncio.Event()
    waiter = asyncio.create_task(stop.wait())
    assert tasks() == before + 1
    stop.set()
    await waiter
    assert tasks() == before


async def test_lag_sampler_samples_every_camera_and_stops() -> None:
    toml = '[[cameras]]\nname = "cam"\nsource = "sim"\nmjpeg = true\n'
    media = CameraMedia(parse_config(toml, {}).cameras[0], loop=asyncio.get_running_loop())
    assert media.mjpeg is not None
    sampler = LagSampler(lambda: [media], period=3600.0)
    with media.mjpeg.subscribe(kind="mjpeg"):
        sampler.sample()
        sampler.sample()
    assert dict(media.tally.lags())["mjpeg"].counts[0] == 2
    sampler.start(asyncio.get_running_loop())  # armed an hour ahead: never fires here
    sampler.stop()
    sampler.stop()
    await media.aclose()
