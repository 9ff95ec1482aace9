"""Configuration: TOML -> validated dataclasses; every error names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import (
    AudioCodec,
    H264Config,
    RateParam,
    Role,
    VideoSource,
    default_config_text,
    is_loopback,
    load_config,
    parse_config,
)
from gateway.demux.mpeg2_sync import ContainerFormat
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CAM = '[[cameras]]\nname = "c"\nsource = "http://10.0.0.1"\n'


def error_of(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env or {})
    return str(info.value)


def test_embedded_default_is_the_shipped_file() -> None:
    assert default_config_text() == (ROOT / "config" / "gateway.toml").read_text()


def test_embedded_default_has_demo_sim_camera_with_all_streams() -> None:
    config = parse_config(default_config_text(), {})
    (demo,) = config.cameras
    assert (demo.name, demo.index, demo.source) == ("demo", 1, "sim")
    assert demo.mjpeg
    assert demo.mpeg2
    assert demo.audio
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)


def test_example_config_loads_with_env_secrets() -> None:
    env = {"OPERATOR_PASSWORD": "op-secret", "CAM_PASSWORD": "cam-secret"}
    config = load_config(ROOT / "config" / "example-axis.toml", env)
    yard = config.camera("yard")
    assert yard is not None
    assert yard.channel == 2
    assert yard.rate_param is RateParam.DES_FPS
    assert (yard.on_demand, yard.idle_seconds) == (True, 60.0)
    assert yard.password is not None
    assert yard.password.value == "cam-secret"
    assert "cam-secret" not in repr(config)
    assert "op-secret" not in repr(config)
    assert set(config.secrets()) == {"op-secret", "cam-secret"}
    assert config.users[0].role is Role.OPERATOR


def test_camera_lookup_by_name_and_position() -> None:
    config = parse_config(CAM + '[[cameras]]\nname = "d"\nsource = "sim"\n', {})
    assert config.camera("d") is config.cameras[1]
    assert config.camera("1") is config.cameras[0]
    assert config.camera("3") is None
    assert config.camera("zz") is None


def test_sim_camera_defaults_all_streams_real_camera_only_mjpeg() -> None:
    config = parse_config(CAM + '[[cameras]]\nname = "s"\nsource = "sim"\n', {})
    real, sim = config.cameras
    assert (real.mjpeg, real.mpeg2, real.audio) == (True, False, False)
    assert (sim.mjpeg, sim.mpeg2, sim.audio) == (True, True, True)
    assert real.audio_codec is AudioCodec.G726


def test_sim_mpeg2_format() -> None:
    sim = '[[cameras]]\nname = "s"\nsource = "sim"\n'
    assert parse_config(sim).cameras[0].sim_mpeg2_format is ContainerFormat.ES
    for fmt in ContainerFormat:
        camera = parse_config(sim + f'sim_mpeg2_format = "{fmt.value}"\n').cameras[0]
        assert camera.sim_mpeg2_format is fmt
    with pytest.raises(ConfigError, match=r"sim_mpeg2_format: must be one of 'es', 'ps', 'ts'"):
        parse_config(sim + 'sim_mpeg2_format = "mp4"\n')


def test_h264_settings_and_keyframes_follow_hls_segments() -> None:
    default = parse_config(CAM).cameras[0]
    assert default.h264 == H264Config(keyframe_seconds=1.0)
    assert default.video_source is VideoSource.MJPEG
    text = (
        "[hls]\nsegment_seconds = 2.0\n"
        + CAM
        + (
            'h264 = {encoder = "h264_nvenc", preset = "fast", bitrate_kbps = 2000, '
            'max_size = "640x360", max_fps = 15}\n'
        )
    )
    camera = parse_config(text).cameras[0]
    assert camera.h264 == H264Config("h264_nvenc", "fast", 2000, (640, 360), 2.0, 15)
    explicit = parse_config(CAM + "h264 = {keyframe_seconds = 0.5}\n").cameras[0]
    assert explicit.h264.keyframe_seconds == 0.5


def test_video_source_is_mpeg2_when_mjpeg_is_off() -> None:
    camera = parse_config(CAM + "mjpeg = false\nmpeg2 = true\n").cameras[0]
    assert camera.video_source is VideoSource.MPEG2


def test_missing_env_variable_names_it() -> None:
    text = CAM + 'username = "root"\npassword = "${CAM_PW}"\n'
    assert error_of(text) == "cameras[1].password: environment variable CAM_PW is not set"
    assert parse_config(text, {"CAM_PW": "pw"}).cameras[0].password is not None


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("fps = 0", "cameras[1].fps: must be a positive integer"),
        ("fps = -3", "cameras[1].fps: must be a positive integer"),
        ('fps = "25"', "cameras[1].fps: must be a positive integer"),
        ("fps = true", "cameras[1].fps: must be a positive integer"),
        ("fps = 500", "cameras[1].fps: must be at most 120"),
        ("channel = 0", "cameras[1].channel: must be a positive integer"),
        ('resolution = "640"', "cameras[1].resolution: must be WIDTHxHEIGHT"),
        ('resolution = "0x480"', "cameras[1].resolution: must be WIDTHxHEIGHT"),
        ('rate_param = "speed"', "cameras[1].rate_param: must be one of 'fps', 'req_fps'"),
        ('audio_codec = "mp3"', "cameras[1].audio_codec: must be one of 'g726'"),
        ("mjpeg = 1", "cameras[1].mjpeg: must be true or false"),
        ("colour = 1", "cameras[1].colour: unknown key"),
        ('password = "x"', "cameras[1].username: is required when password is set"),
        ("stall_timeout = 0", "cameras[1].stall_timeout: must be a number greater than 0"),
        ("mjpeg = false", "cameras[1].mjpeg: at least one of mjpeg, mpeg2 and audio"),
        ('video_source = "h265"', "cameras[1].video_source: must be one of 'mjpeg', 'mpeg2'"),
        ('video_source = "mpeg2"', 'cameras[1].video_source: "mpeg2" needs mpeg2 = true'),
        ('sim_mpeg2_format = "ps"', 'cameras[1].sim_mpeg2_format: is for source = "sim" only'),
        ("h264 = 1", "cameras[1].h264: must be a table"),
        ('h264 = {encoder = "x; rm"}', "cameras[1].h264.encoder: must be an encoder name"),
        ('h264 = {preset = "fastest"}', "cameras[1].h264.preset: must be one of ultrafast"),
        ("h264 = {bitrate_kbps = -1}", "cameras[1].h264.bitrate_kbps: must be an integer >= 0"),
        ('h264 = {max_size = "8x8"}', "cameras[1].h264.max_size: must be at least 16x16"),
        ("h264 = {keyframe_seconds = 0}", "cameras[1].h264.keyframe_seconds: must be a number"),
        ("h264 = {keyframe_seconds = 90}", "cameras[1].h264.keyframe_seconds: must be at most 60"),
        ("h264 = {max_fps = 0}", "cameras[1].h264.max_fps: must be a positive integer"),
        ("h264 = {crf = 20}", "cameras[1].h264.crf: unknown key"),
    ],
)
def test_camera_errors_name_the_key(snippet: str, message: str) -> None:
    assert error_of(CAM + snippet + "\n").startswith(message)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("ftp://cam", 'must be "sim" or an http:// or https:// camera URL'),
        ("http://root:pw@cam", "must not hold credentials"),
        ("http://cam/axis-cgi/mjpg/video.cgi", "must be the camera's base URL"),
        ("cam.local", 'must be "sim" or an http://'),
    ],
)
def test_bad_sources(source: str, message: str) -> None:
    text = f'[[cameras]]\nname = "c"\nsource = "{source}"\n'
    message_seen = error_of(text)
    assert message_seen.startswith("cameras[1].source: ")
    assert message in message_seen
    assert "pw" not in message_seen.replace("cameras", "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cameras: at least one [[cameras]] entry is required"),
        ('[server]\nlisten = "8080"\n' + CAM, "server.listen: must be HOST:PORT"),
        ("[server]\nport = 1\n" + CAM, "server.port: unknown key"),
        (
            "[limits]\nmax_egress_mbps = -1\n" + CAM,
            "limits.max_egress_mbps: must be a number at least 0",
        ),
        (
            "[limits]\nclient_buffer_bytes = 0\n" + CAM,
            "limits.client_buffer_bytes: must be a positive",
        ),
        ("[hls]\npart_seconds = 2.0\n" + CAM, "hls.part_seconds: must not exceed segment_seconds"),
        ("[webrtc]\nice_servers = [1]\n" + CAM, "webrtc.ice_servers[1]: must be a URL string"),
        ('[[users]]\nname = "a"\n' + CAM, "users[1].password: is required"),
        (
            '[[users]]\nname = "a"\npassword = "b"\nrole = "god"\n' + CAM,
            "users[1].role: must be one of",
        ),
        ("bogus = 1\n" + CAM, "bogus: unknown key"),
        ("cameras = 3\n", "cameras: must be an array of tables"),
        (CAM + CAM, "cameras[2].name: duplicate camera name 'c'"),
        ('[[cameras]]\nname = "12"\nsource = "sim"\n', "cameras[1].name: is required: letters"),
        ('[[cameras]]\nname = "c"\n', "cameras[1].source: is required"),
        ("[server\n", "invalid TOML"),
    ],
)
def test_config_errors(text: str, message: str) -> None:
    assert error_of(text).startswith(message)


def test_listen_accepts_ipv6_and_ice_tables() -> None:
    text = (
        '[server]\nlisten = "[::1]:9000"\n'
        '[webrtc]\nice_servers = ["stun:s:3478", {urls = ["turn:t:3478"], username = "u",'
        ' credential = "${TURN}"}]\n' + CAM
    )
    config = parse_config(text, {"TURN": "turn-secret"})
    assert (config.server.host, config.server.port) == ("::1", 9000)
    assert config.webrtc.ice_servers[1].urls == ("turn:t:3478",)
    assert "turn-secret" in config.secrets()
    assert "turn-secret" not in repr(config)


def test_load_config_prefixes_path_and_reports_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text(CAM + "fps = 0\n")
    with pytest.raises(
        ConfigError, match=r"bad\.toml: cameras\[1\]\.fps: must be a positive integer"
    ):
        load_config(bad)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_on_demand_defaults_and_values() -> None:
    camera = parse_config(CAM, {}).cameras[0]
    assert (camera.on_demand, camera.idle_seconds) == (False, 60.0)
    camera = parse_config(CAM + "on_demand = true\nidle_seconds = 0\n", {}).cameras[0]
    assert (camera.on_demand, camera.idle_seconds) == (True, 0.0)
    assert error_of(CAM + 'on_demand = "yes"\n').endswith("on_demand: must be true or false")
    assert error_of(CAM + "idle_seconds = -1\n").endswith(
        "idle_seconds: must be a number at least 0"
    )
