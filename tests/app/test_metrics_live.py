"""/metrics on a running gateway: client families across a client leaving, HTTP responses,
auth denials, and ``promtool check metrics`` on a live scrape (when promtool is installed)."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import CAMERAS
from gateway.hub.renditions import RenditionKey
from gateway.transcode import PCM_KEY
from tests.publish.axis_client import Gateway, camera_toml, gateway, mjpeg

#: The families a live gateway with an MJPEG+audio camera and an fMP4 viewer must expose.
FAMILIES = {
    "gateway_clients": "gauge",
    "gateway_client_joins": "counter",
    "gateway_client_frames_delivered": "counter",
    "gateway_client_frames_skipped": "counter",
    "gateway_client_cuts": "counter",
    "gateway_client_lag_seconds": "histogram",
    "gateway_rendition_frames_in": "counter",
    "gateway_rendition_busy_seconds": "counter",
    "gateway_renditions_started": "counter",
    "gateway_http_responses": "counter",
    "gateway_http_connections_shed": "counter",
    "gateway_auth_denials": "counter",
    "gateway_process_tasks": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
}


async def scrape(session: aiohttp.ClientSession, gw: Gateway) -> dict[tuple[str, str], float]:
    """Return every sample of ``/metrics`` by (name, sorted labels)."""
    async with session.get(gw.base + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[sample.name, labels] = sample.value
    return out


async def eventually(
    session: aiohttp.ClientSession, gw: Gateway, name: str, labels: str, want: float
) -> dict[tuple[str, str], float]:
    """Scrape until sample ``name{labels}`` equals ``want`` (generous bound); return the scrape."""
    deadline = time.monotonic() + 15
    while True:
        samples = await scrape(session, gw)
        if samples.get((name, labels)) == want or time.monotonic() > deadline:
            assert samples.get((name, labels)) == want, (name, labels, samples.get((name, labels)))
            return samples
        await asyncio.sleep(0.1)


async def test_client_counters_are_monotonic_across_clients_leaving() -> None:
    async with gateway(camera_toml()) as gw, aiohttp.ClientSession() as session:
        await gw.live()
        first = await mjpeg(gw.port, "/axis-cgi/mjpg/video.cgi", count=5)
        assert len(first.parts) == 5
        key = "camera=cam,kind=mjpeg,stream=mjpeg"
        gone = await eventually(session, gw, "gateway_clients", "camera=cam,kind=mjpeg", 0.0)
        delivered = gone["gateway_client_frames_delivered_total", key]
        assert delivered >= 5
        assert gone["gateway_client_joins_total", key] == 1.0
        second = await mjpeg(gw.port, "/axis-cgi/mjpg/video.cgi", count=3)
        assert len(second.parts) == 3
        after = await eventually(session, gw, "gateway_clients", "camera=cam,kind=mjpeg", 0.0)
        assert after["gateway_client_frames_delivered_total", key] >= delivered + 3
        assert after["gateway_client_joins_total", key] == 2.0
        assert (
            after["gateway_client_frames_skipped_total", key]
            >= gone["gateway_client_frames_skipped_total", key]
        )
        async with session.get(gw.base + "/mp4/nosuchcamera") as response:
            assert response.status == 404
        samples = await scrape(session, gw)
        ok = "method=GET,route=mjpeg,status=200"
        assert samples["gateway_http_responses_total", ok] == 2.0
        missing = "method=GET,route=mp4,status=404"
        assert samples["gateway_http_responses_total", missing] == 1.0


async def test_auth_denials_are_counted_by_reason_and_as_responses() -> None:
    toml = '[[users]]\nname = "op"\npassword = "pw"\nrole = "admin"\n' + camera_toml()
    async with gateway(toml) as gw, aiohttp.ClientSession() as session:
        async with session.get(gw.base + "/api/cameras") as response:
            assert response.status == 401
        wrong = {"Authorization": "Basic " + base64.b64encode(b"op:nope").decode()}
        async with session.get(gw.base + "/api/cameras", headers=wrong) as response:
            assert response.status == 401
        right = {"Authorization": "Basic " + base64.b64encode(b"op:pw").decode()}
        async with session.get(gw.base + "/metrics", headers=right) as response:
            assert response.status == 200
            text = await response.text()
    lines = set(text.splitlines())
    expected = {
        'gateway_auth_denials_total{reason="no_credentials"} 1.0',
        'gateway_auth_denials_total{reason="bad_password"} 1.0',
        'gateway_http_responses_total{method="GET",route="api",status="401"} 2.0',
    }
    assert expected <= lines, expected - lines


def promtool() -> str:
    """Return promtool's path, or skip (fail where it is required: CI)."""
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool is not installed (Debian: apt-get install prometheus)"
        if os.environ.get("GATEWAY_REQUIRE_PROMTOOL") == "1":
            pytest.fail(f"GATEWAY_REQUIRE_PROMTOOL=1 but {reason}")
        pytest.skip(reason)
    return path


async def test_a_live_scrape_passes_promtool_check_metrics() -> None:
    tool = promtool()
    toml = camera_toml(extra="audio = true\n")
    async with gateway(toml) as gw, aiohttp.ClientSession() as session:
        await gw.live()
        # An fMP4 viewer: the H.264 and AAC encodes run, and two readers join.
        async with session.get(gw.base + "/mp4/cam") as response:
            assert response.status == 200
            seen = b""
            while seen.count(b"moof") < 3:
                seen += await response.content.readany()
        media = gw.app[CAMERAS]["cam"].media
        assert media.renditions.get(PCM_KEY) is not None
        assert media.renditions.get(RenditionKey("h264")) is not None
        await mjpeg(gw.port, "/axis-cgi/mjpg/video.cgi?resolution=320x240", count=2)
        async with session.get(gw.base + "/metrics") as response:
            text = await response.text()
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    missing = {name: kind for name, kind in FAMILIES.items() if types.get(name) != kind}
    assert not missing, missing
    checked = await asyncio.to_thread(
        subprocess.run,
        [tool, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    report = (checked.stdout + checked.stderr).decode()
    assert checked.returncode == 0, report
    assert not report.strip(), report
