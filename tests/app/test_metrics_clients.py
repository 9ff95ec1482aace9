"""/metrics client families from a real CameraMedia: types, labels, monotonic counters, lag."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gateway.config import parse_config
from gateway.hub import LAG_BUCKETS_S, CameraMedia
from gateway.media import NS_PER_SECOND
from gateway.metrics import make_registry, render
from tests.hub.test_hub_ring import Source
from tests.hub.test_hub_stream import frame

TOML = '[[cameras]]\nname = "cam"\nsource = "sim"\nmjpeg = true\nmpeg2 = true\n'


def scrape(media: Mapping[str, CameraMedia]) -> dict[str, tuple[str, list[Sample]]]:
    """Return each family of a scrape as (type, samples), parsed back from the text."""
    text = render(make_registry(list, media=lambda: media)).decode()
    return {f.name: (f.type, f.samples) for f in text_string_to_metric_families(text)}


def value(families: dict[str, tuple[str, list[Sample]]], sample: str, **labels: str) -> float:
    """Return the one sample named ``sample`` with exactly ``labels``."""
    name = sample.removesuffix("_total").removesuffix("_bucket").removesuffix("_count")
    name = name.removesuffix("_sum")
    found = [s.value for s in families[name][1] if s.name == sample and s.labels == labels]
    assert len(found) == 1, (sample, labels, families[name][1])
    return found[0]


def make_media() -> CameraMedia:
    camera = parse_config(TOML, {}).cameras[0]
    return CameraMedia(camera, loop=asyncio.get_running_loop())


async def test_reader_counters_are_typed_labelled_and_survive_a_client_leaving() -> None:
    media = make_media()
    assert media.mjpeg is not None
    assert media.mpeg2 is not None
    ident = {"camera": "cam", "kind": "mjpeg", "stream": "mjpeg"}
    with media.mjpeg.subscribe(kind="mjpeg") as sub:
        for i in range(4):
            media.mjpeg.publish(frame(i))
        assert sub.poll() is not None
        during = scrape({"cam": media})
    after = scrape({"cam": media})
    for name in ("gateway_client_joins", "gateway_client_frames_delivered"):
        assert during[name][0] == "counter"
    assert during["gateway_client_lag_seconds"][0] == "histogram"
    before_left = value(during, "gateway_client_frames_delivered_total", **ident)
    assert before_left == 1.0
    assert value(after, "gateway_client_frames_delivered_total", **ident) == before_left
    assert value(after, "gateway_client_frames_skipped_total", **ident) == 3.0
    assert value(after, "gateway_client_joins_total", **ident) == 1.0
    # Another reader of another source adds its own series; the first keeps its total.
    Source(gop=12).publish(media.mpeg2, 12)
    with media.mpeg2.subscribe(kind="mpeg2") as cur:
        assert len(cur.take(1 << 20)) == 12
    later = scrape({"cam": media})
    assert value(later, "gateway_client_frames_delivered_total", **ident) == before_left
    mpeg2 = {"camera": "cam", "kind": "mpeg2", "stream": "mpeg2"}
    assert value(later, "gateway_client_frames_delivered_total", **mpeg2) == 12.0
    assert value(later, "gateway_client_cuts_total", **mpeg2) == 0.0
    await media.aclose()


async def test_lag_histogram_is_cumulative_with_an_inf_bucket() -> None:
    media = make_media()
    assert media.mjpeg is not None
    with media.mjpeg.subscribe(kind="mjpeg") as sub:
        for lag_s in (0.02, 0.3, 3.0):
            sub.lag_ns = round(lag_s * NS_PER_SECOND)
            media.tally.sample()
    families = scrape({"cam": media})
    ident = {"camera": "cam", "kind": "mjpeg"}
    buckets = {
        s.labels["le"]: s.value
        for s in families["gateway_client_lag_seconds"][1]
        if s.name.endswith("_bucket")
    }
    assert list(buckets) == [*(str(b) for b in LAG_BUCKETS_S), "+Inf"]
    assert buckets["0.05"] == 1.0
    assert buckets["0.5"] == 2.0
    assert buckets["5.0"] == buckets["+Inf"] == 3.0
    assert value(families, "gateway_client_lag_seconds_count", **ident) == 3.0
    assert abs(value(families, "gateway_client_lag_seconds_sum", **ident) - 3.32) < 1e-9
    await media.aclose()
