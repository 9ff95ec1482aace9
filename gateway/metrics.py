"""Prometheus exposition: a per-application registry read from live ingest, encode and HLS state."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.media import StreamState

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


#: (metric suffix, rendition stats key, help) for the per-rendition counters; a key a
#: rendition kind does not have is left out for it.
_RENDITION_COUNTERS = (
    ("skipped", "skipped", "Input frames a producer skipped because it was behind"),
    ("failed", "failed", "Input frames a producer could not decode or encode"),
    ("keyframes_requested", "keyframes_requested", "Keyframes readers asked the encoder for"),
    ("keyframes_produced", "keyframes_produced", "Keyframes the encoder produced"),
)
#: (metric suffix, rendition stats key, help) for the per-rendition gauges.
_RENDITION_GAUGES = (
    ("consumers", "consumers", "Readers of the rendition's output"),
    ("fps_in", "fps_in", "Frames per second into the producer"),
    ("fps_out", "fps_out", "Frames per second out of the producer"),
    ("encode_ms_mean", "encode_ms_mean", "Mean producer time per frame, milliseconds"),
)


class RenditionCollector(Collector):
    """Collect each camera's live renditions (encodes, variants) at scrape time."""

    def __init__(self, snapshots: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        """Yield one family per figure, labelled by camera, rendition kind and parameters."""
        labels = ["camera", "kind", "params"]
        live = GaugeMetricFamily(
            "gateway_rendition_active",
            "1 while the rendition has claims, 0 while it lingers before stopping",
            labels=labels,
        )
        gauges = {
            key: GaugeMetricFamily(f"gateway_rendition_{name}", text, labels=labels)
            for name, key, text in _RENDITION_GAUGES
        }
        counters = {
            key: CounterMetricFamily(f"gateway_rendition_{name}", text, labels=labels)
            for name, key, text in _RENDITION_COUNTERS
        }
        for camera in self._snapshots():
            for rendition in camera.get("renditions", ()):
                ident = [camera["name"], rendition["kind"], rendition["params"] or ""]
                live.add_metric(ident, float(rendition["state"] == "active"))
                for table in (gauges, counters):
                    for key, family in table.items():
                        value = rendition.get(key)
                        if isinstance(value, int | float):
                            family.add_metric(ident, float(value))
        yield live
        yield from gauges.values()
        yield from counters.values()


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


def make_registry(
    snapshots: Callable[[], Iterable[dict[str, Any]]],
    webrtc: Callable[[], dict[str, Any]] = dict,
) -> CollectorRegistry:
    """Return a registry (not the process-global one) exposing the cameras' state."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IngestCollector(snapshots))
    registry.register(RenditionCollector(snapshots))
    registry.register(HlsCollector(snapshots))
    registry.register(WebRtcCollector(snapshots, webrtc))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """Return the registry in the Prometheus text format."""
    return generate_latest(registry)
