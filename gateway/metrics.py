"""Prometheus exposition: a per-application registry read from live ingest, clients, encodes,
LL-HLS and WebRTC state at scrape time (the HTTP and process figures: ``app_metrics``).

Names follow the Prometheus conventions (base units in the name, ``_total`` on counters,
which ``CounterMetricFamily`` adds); labels are bounded sets (cameras, outputs, kinds),
never a client's address or a request path.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gateway.hub.tally import LAG_BUCKETS_S
from gateway.media import StreamState

if TYPE_CHECKING:
    from gateway.hub import CameraMedia

#: The exposition format's media type, for the response header.
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: (metric suffix, snapshot key, help) for the per-stream counters.
_COUNTERS = (
    ("bytes_in", "bytes_in", "Payload bytes received from the camera"),
    ("frames_in", "frames_in", "Frames received from the camera"),
    ("frames_dropped", "frames_dropped", "Damaged frames dropped at ingest"),
    ("reconnects", "reconnects", "Upstream reconnects"),
)


class IngestCollector(Collector):
    """Collect per-stream ingest figures from camera snapshots at scrape time."""

    def __init__(self, snapshots: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        """Yield one family per figure, labelled by camera and stream."""
        labels = ["camera", "stream"]
        fps = GaugeMetricFamily(
            "gateway_stream_fps_in", "Frames per second from the camera", labels=labels
        )
        state = GaugeMetricFamily(
            "gateway_stream_state",
            "1 for the stream's current ingest state",
            labels=[*labels, "state"],
        )
        counters = {
            key: CounterMetricFamily(f"gateway_stream_{name}", text, labels=labels)
            for name, key, text in _COUNTERS
        }
        for camera in self._snapshots():
            for kind, stream in camera["streams"].items():
                ident = [camera["name"], kind]
                fps.add_metric(ident, float(stream["fps_in"]))
                for member in StreamState:
                    state.add_metric([*ident, member.value], float(stream["state"] == member.value))
                for key, family in counters.items():
                    family.add_metric(ident, float(stream[key]))
        yield fps
        yield state
        yield from counters.values()


@dataclass(frozen=True, slots=True)
class Figure:
    """One per-rendition figure: its metric, and where each kind's stats hold it."""

    #: Metric name after ``gateway_rendition_`` (a counter's ``_total`` is added).
    name: str
    help: str
    #: Stats keys that may hold it, by kind; the first numeric one is taken (``a.b``: a
    #: nested dict). A kind that has none of them is left out, not reported as 0.
    keys: tuple[str, ...]


#: The per-rendition gauges.
_RENDITION_GAUGES = (
    Figure("consumers", "Readers of the rendition's output", ("consumers",)),
    Figure("fps_in", "Frames per second into the producer", ("fps_in",)),
    Figure("fps_out", "Frames per second out of the producer", ("fps_out", "packets_per_s")),
)
#: The per-rendition counters (they start at 0 with each run of the rendition).
_RENDITION_COUNTERS = (
    Figure("frames_in", "Frames into the producer", ("pipeline_frames_in", "frames_in")),
    Figure(
        "frames_out",
        "Frames (audio: packets) out of the producer",
        ("pipeline_frames_out", "frames_out", "packets_out"),
    ),
    Figure("frames_skipped", "Input frames a producer skipped because it was behind", ("skipped",)),
    Figure("frames_failed", "Input frames a producer could not decode or encode", ("failed",)),
    Figure(
        "keyframes_requested", "Keyframes readers asked the encoder for", ("keyframes_requested",)
    ),
    Figure("keyframes_produced", "Keyframes the encoder produced", ("keyframes_produced",)),
    Figure(
        "busy_seconds",
        "Seconds the producer's worker spent converting, encoding or decoding",
        ("pipeline_busy_seconds_total", "encode_seconds_total", "decoder.decode_seconds_total"),
    ),
    Figure("bytes_out", "Encoded bytes out of the producer", ("bytes_out",)),
)


def _figure(stats: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    """Return the first numeric value of ``keys`` in ``stats``, or None."""
    for key in keys:
        value: Any = stats
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


class RenditionCollector(Collector):
    """Collect each camera's live renditions (encodes, variants) at scrape time."""

    def __init__(
        self,
        snapshots: Callable[[], Iterable[dict[str, Any]]],
        media: Callable[[], Mapping[str, CameraMedia]] = dict,
    ) -> None:
        self._snapshots = snapshots
        self._media = media

    def collect(self) -> Iterator[Metric]:
        """Yield one family per figure, labelled by camera, rendition kind and parameters."""
        labels = ["camera", "kind", "params"]
        live = GaugeMetricFamily(
            "gateway_rendition_active",
            "1 while the rendition has claims, 0 while it lingers before stopping",
            labels=labels,
        )
        gauges = [
            (f, GaugeMetricFamily(f"gateway_rendition_{f.name}", f.help, labels=labels))
            for f in _RENDITION_GAUGES
        ]
        counters = [
            (f, CounterMetricFamily(f"gateway_rendition_{f.name}", f.help, labels=labels))
            for f in _RENDITION_COUNTERS
        ]
        for camera in self._snapshots():
            for rendition in camera.get("renditions", ()):
                ident = [camera["name"], rendition["kind"], rendition["params"] or ""]
                live.add_metric(ident, float(rendition["state"] == "active"))
                for figure, family in gauges:
                    if (value := _figure(rendition, figure.keys)) is not None:
                        family.add_metric(ident, value)
                for figure, counter in counters:
                    if (value := _figure(rendition, figure.keys)) is not None:
                        counter.add_metric(ident, value)
        started = CounterMetricFamily(
            "gateway_renditions_started", "Renditions started", labels=["camera", "kind"]
        )
        stopped = CounterMetricFamily(
            "gateway_renditions_stopped", "Renditions stopped", labels=["camera", "kind"]
        )
        for name, media in self._media().items():
            renditions = media.renditions
            for kind in sorted(renditions.kinds()):
                started.add_metric([name, kind], float(renditions.started.get(kind, 0)))
                stopped.add_metric([name, kind], float(renditions.stopped.get(kind, 0)))
        yield live
        yield from (family for _, family in gauges)
        yield from (family for _, family in counters)
        yield started
        yield stopped


#: (metric suffix, ``outputs.hls`` key, help) for the per-camera LL-HLS gauges; a figure
#: not known yet (None: no cold start measured) is left out.
_HLS_GAUGES = (
    ("viewers", "viewers", "Connections that asked for an LL-HLS playlist lately"),
    ("segments", "segments", "Complete segments in the LL-HLS playlist window"),
    (
        "cold_start_seconds",
        "cold_start_seconds",
        "Seconds from the LL-HLS session's start to its first playlist",
    ),
)


class HlsCollector(Collector):
    """Collect each camera's LL-HLS session (``/api`` ``outputs.hls``) at scrape time."""

    def __init__(self, snapshots: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        """Yield one family per figure, labelled by camera."""
        labels = ["camera"]
        running = GaugeMetricFamily(
            "gateway_hls_running", "1 while the camera's LL-HLS session runs", labels=labels
        )
        starts = CounterMetricFamily(
            "gateway_hls_starts", "LL-HLS sessions started on demand", labels=labels
        )
        gauges = {
            key: GaugeMetricFamily(f"gateway_hls_{name}", text, labels=labels)
            for name, key, text in _HLS_GAUGES
        }
        for camera in self._snapshots():
            hls = camera.get("outputs", {}).get("hls")
            if hls is None:
                continue
            ident = [camera["name"]]
            running.add_metric(ident, float(hls["state"] == "running"))
            starts.add_metric(ident, float(hls["starts"]))
            for key, family in gauges.items():
                value = hls.get(key)
                if isinstance(value, int | float):
                    family.add_metric(ident, float(value))
        yield running
        yield starts
        yield from gauges.values()


#: (metric suffix, ``outputs.webrtc`` key, help) for the per-camera WebRTC counters.
_WEBRTC_COUNTERS = (
    ("sessions_started", "sessions_started", "WHEP sessions started"),
    ("video_sent_bytes", "video_bytes", "H.264 RTP payload bytes sent to WebRTC viewers"),
    ("video_sent_packets", "video_packets", "H.264 RTP packets sent to WebRTC viewers"),
    ("audio_sent_bytes", "audio_bytes", "Opus RTP payload bytes sent to WebRTC viewers"),
    ("audio_sent_packets", "audio_packets", "Opus RTP packets sent to WebRTC viewers"),
    ("keyframe_requests", "keyframe_requests", "PLI and FIR received from WebRTC viewers"),
    ("payloads_prepared", "payloads_prepared", "Frames packetized (once for every viewer)"),
)


class WebRtcCollector(Collector):
    """Collect the WHEP sessions per camera and the app-wide refusals at scrape time."""

    def __init__(
        self,
        snapshots: Callable[[], Iterable[dict[str, Any]]],
        app_stats: Callable[[], dict[str, Any]],
    ) -> None:
        self._snapshots = snapshots
        self._app_stats = app_stats

    def collect(self) -> Iterator[Metric]:
        """Yield the per-camera families, the per-session RTT, and the app-wide counters."""
        labels = ["camera"]
        sessions = GaugeMetricFamily("gateway_webrtc_sessions", "Live WHEP sessions", labels=labels)
        rtt = GaugeMetricFamily(
            "gateway_webrtc_rtt_seconds",
            "Round-trip time of each live WHEP session (from RTCP receiver reports)",
            labels=["camera", "session"],
        )
        counters = {
            key: CounterMetricFamily(f"gateway_webrtc_{name}", text, labels=labels)
            for name, key, text in _WEBRTC_COUNTERS
        }
        for camera in self._snapshots():
            webrtc = camera.get("outputs", {}).get("webrtc")
            if webrtc is None:
                continue
            ident = [camera["name"]]
            sessions.add_metric(ident, float(webrtc["sessions"]))
            for session, ms in webrtc.get("rtt_ms", {}).items():
                rtt.add_metric([camera["name"], session], ms / 1000)
            for key, family in counters.items():
                family.add_metric(ident, float(webrtc.get(key, 0)))
        stats = self._app_stats()
        connections = CounterMetricFamily(
            "gateway_webrtc_peer_connections", "Peer connections made for WHEP sessions"
        )
        connections.add_metric([], float(stats.get("peer_connections", 0)))
        refused = CounterMetricFamily(
            "gateway_webrtc_refused", "WHEP requests refused, by HTTP status", labels=["status"]
        )
        for status, count in sorted(stats.get("refused", {}).items()):
            refused.add_metric([str(status)], float(count))
        ended = CounterMetricFamily(
            "gateway_webrtc_sessions_ended", "WHEP sessions ended, by cause", labels=["cause"]
        )
        for reason, count in sorted(stats.get("ended", {}).items()):
            ended.add_metric([reason], float(count))
        yield sessions
        yield rtt
        yield from counters.values()
        yield connections
        yield refused
        yield ended


#: (kind, ``outputs`` entry, key) of the client counts that are not Axis readers.
_CLIENT_COUNTS = (
    ("mp4", "mp4", "viewers"),
    ("hls", "hls", "viewers"),
    ("webrtc", "webrtc", "sessions"),
)


class ClientCollector(Collector):
    """Collect each camera's clients: how many per kind, what they were handed, their lag.

    Counts come from the ``/api`` snapshot; the frame counters and lag histogram from
    the camera's ``ClientTally`` (totals that survive a client leaving), labelled by
    output (``kind``) and the stream or rendition it reads (``stream``): a bounded set.
    """

    def __init__(
        self,
        snapshots: Callable[[], Iterable[dict[str, Any]]],
        media: Callable[[], Mapping[str, CameraMedia]],
    ) -> None:
        self._snapshots = snapshots
        self._media = media

    def collect(self) -> Iterator[Metric]:
        """Yield the client gauge, the per-reader counters and the lag histogram."""
        clients = GaugeMetricFamily(
            "gateway_clients",
            "Clients per camera and output (hls: viewers that polled lately)",
            labels=["camera", "kind"],
        )
        for camera in self._snapshots():
            outputs = camera.get("outputs", {})
            ident = camera["name"]
            for key, count in outputs.get("axis", {}).items():
                if key.endswith("_clients"):
                    clients.add_metric([ident, key.removesuffix("_clients")], float(count))
            for kind, output, key in _CLIENT_COUNTS:
                if output in outputs:
                    clients.add_metric([ident, kind], float(outputs[output].get(key, 0)))
        yield clients
        labels = ["camera", "kind", "stream"]
        families = {
            "joined": CounterMetricFamily(
                "gateway_client_joins", "Readers that joined a stream or rendition", labels=labels
            ),
            "delivered": CounterMetricFamily(
                "gateway_client_frames_delivered", "Frames handed to readers", labels=labels
            ),
            "skipped": CounterMetricFamily(
                "gateway_client_frames_skipped",
                "Frames readers never got: replaced while they were behind, or cut over",
                labels=labels,
            ),
            "cuts": CounterMetricFamily(
                "gateway_client_cuts",
                "Times a reader that fell behind was cut forward to the newest keyframe",
                labels=labels,
            ),
        }
        lag = HistogramMetricFamily(
            "gateway_client_lag_seconds",
            "Readers' lag behind live, kernel send queue included, sampled every second",
            labels=["camera", "kind"],
        )
        bounds = [*(repr(b) for b in LAG_BUCKETS_S), "+Inf"]
        for name, media in self._media().items():
            for (kind, stream), totals in sorted(media.tally.totals().items()):
                for attr, family in families.items():
                    family.add_metric([name, kind, stream], float(getattr(totals, attr)))
            for kind, buckets in sorted(media.tally.lags()):
                cumulative = list(itertools.accumulate(buckets.counts))
                lag.add_metric(
                    [name, kind],
                    [(b, float(n)) for b, n in zip(bounds, cumulative, strict=True)],
                    buckets.total_s,
                )
        yield from families.values()
        yield lag


def make_registry(
    snapshots: Callable[[], Iterable[dict[str, Any]]],
    webrtc: Callable[[], dict[str, Any]] = dict,
    *,
    media: Callable[[], Mapping[str, CameraMedia]] = dict,
    extra: Iterable[Collector] = (),
) -> CollectorRegistry:
    """Return a registry (not the process-global one) exposing the cameras' state.

    ``media`` gives the cameras' media by name (client totals, renditions started);
    ``extra`` are app-wide collectors (HTTP, process).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IngestCollector(snapshots))
    registry.register(ClientCollector(snapshots, media))
    registry.register(RenditionCollector(snapshots, media))
    registry.register(HlsCollector(snapshots))
    registry.register(WebRtcCollector(snapshots, webrtc))
    for collector in extra:
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """Return the registry in the Prometheus text format."""
    return generate_latest(registry)
