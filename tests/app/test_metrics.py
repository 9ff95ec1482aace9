"""/metrics from /api-shaped snapshots: renditions, LL-HLS sessions, client counts."""

from __future__ import annotations

from typing import Any

from gateway.metrics import make_registry, render

CAMERA: dict[str, Any] = {
    "name": "cam",
    "streams": {},
    "renditions": [
        {
            "kind": "h264",
            "params": None,
            "state": "active",
            "consumers": 3,
            "fps_in": 25.0,
            "fps_out": 24.9,
            "skipped": 2,
            "failed": 1,
            "encode_ms_mean": 3.5,
            "pipeline_frames_in": 120,
            "pipeline_frames_out": 118,
            "pipeline_busy_seconds_total": 0.42,
            "keyframes_requested": 4,
            "keyframes_produced": 9,
            "codec": "avc1.42c01f",
        },
        {"kind": "jpeg", "params": "320x240", "state": "lingering", "consumers": 0},
        {
            "kind": "pcm",
            "params": None,
            "state": "active",
            "consumers": 1,
            "decoder": {"decode_seconds_total": 0.25, "last_error": None},
        },
        {
            "kind": "aac",
            "params": None,
            "state": "active",
            "consumers": 1,
            "packets_per_s": 46.9,
            "packets_out": 470,
            "bytes_out": 61000,
            "encode_seconds_total": 0.5,
            "skipped": 0,
            "failed": False,
        },
    ],
    "outputs": {
        "hls": {
            "state": "running",
            "session": "0a1b2c3d",
            "viewers": 20,
            "starts": 2,
            "cold_start_seconds": 1.25,
            "segments": 12,
            "target_duration": 1,
        }
    },
}
#: A camera whose LL-HLS session never ran.
IDLE: dict[str, Any] = {
    "name": "idle",
    "streams": {},
    "outputs": {
        "hls": {
            "state": "idle",
            "session": None,
            "viewers": 0,
            "starts": 0,
            "cold_start_seconds": None,
            "segments": 0,
            "target_duration": None,
        }
    },
}


def test_renditions_are_exposed_with_their_labels() -> None:
    text = render(make_registry(lambda: [CAMERA])).decode()
    lines = set(text.splitlines())
    h264 = 'camera="cam",kind="h264",params=""'
    jpeg = 'camera="cam",kind="jpeg",params="320x240"'
    aac = 'camera="cam",kind="aac",params=""'
    pcm = 'camera="cam",kind="pcm",params=""'
    expected = {
        f"gateway_rendition_active{{{h264}}} 1.0",
        f"gateway_rendition_active{{{jpeg}}} 0.0",
        f"gateway_rendition_consumers{{{h264}}} 3.0",
        f"gateway_rendition_consumers{{{jpeg}}} 0.0",
        f"gateway_rendition_fps_out{{{h264}}} 24.9",
        f"gateway_rendition_frames_in_total{{{h264}}} 120.0",
        f"gateway_rendition_frames_out_total{{{h264}}} 118.0",
        f"gateway_rendition_frames_skipped_total{{{h264}}} 2.0",
        f"gateway_rendition_frames_failed_total{{{h264}}} 1.0",
        f"gateway_rendition_keyframes_requested_total{{{h264}}} 4.0",
        f"gateway_rendition_keyframes_produced_total{{{h264}}} 9.0",
        f"gateway_rendition_busy_seconds_total{{{h264}}} 0.42",
        # Each kind's figures under the shared names: audio packets are its frames out.
        f"gateway_rendition_fps_out{{{aac}}} 46.9",
        f"gateway_rendition_frames_out_total{{{aac}}} 470.0",
        f"gateway_rendition_bytes_out_total{{{aac}}} 61000.0",
        f"gateway_rendition_busy_seconds_total{{{aac}}} 0.5",
        f"gateway_rendition_busy_seconds_total{{{pcm}}} 0.25",
    }
    assert expected <= lines, expected - lines
    # Milliseconds are not a base unit: the mean per frame is busy_seconds / frames_in.
    assert "encode_ms" not in text
    # A boolean is not a figure.
    failed_aac = f"gateway_rendition_frames_failed_total{{{aac}"
    assert not any(line.startswith(failed_aac) for line in lines)
    # A figure a kind does not have is left out, not reported as 0.
    assert not any(line.startswith(f"gateway_rendition_fps_in{{{jpeg}") for line in lines)
    # Strings (the codec) are not metrics.
    assert "avc1" not in text


def test_hls_sessions_are_exposed_per_camera() -> None:
    text = render(make_registry(lambda: [CAMERA, IDLE])).decode()
    lines = set(text.splitlines())
    expected = {
        'gateway_hls_running{camera="cam"} 1.0',
        'gateway_hls_running{camera="idle"} 0.0',
        'gateway_hls_starts_total{camera="cam"} 2.0',
        'gateway_hls_starts_total{camera="idle"} 0.0',
        'gateway_hls_viewers{camera="cam"} 20.0',
        'gateway_hls_viewers{camera="idle"} 0.0',
        'gateway_hls_segments{camera="cam"} 12.0',
        'gateway_hls_cold_start_seconds{camera="cam"} 1.25',
    }
    assert expected <= lines, expected - lines
    # No cold start measured yet: left out, not 0.
    assert not any(
        line.startswith('gateway_hls_cold_start_seconds{camera="idle"}') for line in lines
    )


def test_clients_are_counted_per_camera_and_output() -> None:
    camera = {
        "name": "cam",
        "streams": {},
        "outputs": {
            "axis": {"mjpeg_clients": 3, "audio_clients": 1},
            "mp4": {"viewers": 2},
            "hls": {"state": "idle", "viewers": 0, "starts": 0, "segments": 0},
            "webrtc": {"sessions": 4},
        },
    }
    lines = set(render(make_registry(lambda: [camera])).decode().splitlines())
    expected = {
        'gateway_clients{camera="cam",kind="mjpeg"} 3.0',
        'gateway_clients{camera="cam",kind="audio"} 1.0',
        'gateway_clients{camera="cam",kind="mp4"} 2.0',
        'gateway_clients{camera="cam",kind="hls"} 0.0',
        'gateway_clients{camera="cam",kind="webrtc"} 4.0',
    }
    assert expected <= lines, expected - lines
    # A source the camera does not have is not an output with 0 clients.
    assert not any('kind="mpeg2"' in line for line in lines)
