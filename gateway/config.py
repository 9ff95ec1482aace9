"""Configuration: TOML -> frozen dataclasses, validated, with ``${ENV}`` secrets."""

from __future__ import annotations

import enum
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from gateway.demux.mpeg2_sync import ContainerFormat
from gateway.errors import ConfigError

_E = TypeVar("_E", bound=enum.Enum)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CAMERA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class RateParam(enum.Enum):
    """Which rate parameter a camera's firmware wants upstream."""

    FPS = "fps"
    REQ_FPS = "req_fps"
    DES_FPS = "des_fps"


class AudioCodec(enum.Enum):
    """How the camera packs its audio parts."""

    G726 = "g726"
    G726LE = "g726le"
    PCMU = "pcmu"


class VideoSource(enum.Enum):
    """Which camera stream the H.264 encode decodes."""

    MJPEG = "mjpeg"
    MPEG2 = "mpeg2"


class Role(enum.Enum):
    """What a user may do."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Secret:
    """A string that never shows itself in repr, str, logs or API output."""

    value: str = field(repr=False)

    def __str__(self) -> str:
        return "***"

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True, slots=True)
class H264Config:
    """The camera's shared H.264 encode (``[cameras.h264]``, DESIGN §4)."""

    #: ``libx264``, or a hardware encoder PyAV offers (``h264_nvenc``, ``h264_vaapi``).
    encoder: str = "libx264"
    #: x264 preset.
    preset: str = "veryfast"
    #: Target bit rate; 0 means constant quality (crf).
    bitrate_kbps: int = 0
    #: Largest output size; a larger camera picture is scaled down, aspect kept.
    max_size: tuple[int, int] = (1280, 720)
    #: Seconds between keyframes (None: ``hls.segment_seconds``).
    keyframe_seconds: float | None = None
    #: Highest frame rate encoded; faster input is thinned (None: the camera's rate).
    max_fps: int | None = None


@dataclass(frozen=True, slots=True)
class CameraConfig:
    """One camera: where it is and which of its streams to ingest."""

    #: Name used in URLs and the API (``camera=demo``).
    name: str
    #: 1-based position in the configuration (``camera=1``).
    index: int
    #: ``"sim"`` or the camera's base URL, ``http://host[:port]`` (no credentials, no path).
    source: str
    username: str | None = None
    password: Secret | None = None
    mjpeg: bool = True
    mpeg2: bool = False
    audio: bool = False
    #: Upstream ``camera=N`` on multi-input video servers; None sends no ``camera``.
    channel: int | None = None
    #: Frame rate asked of the camera when no client needs more; None = camera default.
    fps: int | None = None
    #: Upstream ``resolution=WxH``; None = camera default.
    resolution: tuple[int, int] | None = None
    #: Name of the rate parameter the firmware understands.
    rate_param: RateParam = RateParam.FPS
    audio_codec: AudioCodec = AudioCodec.G726
    #: Seconds without a frame (bytes or not) before the connection is considered stalled.
    stall_timeout: float = 5.0
    #: Seconds of MPEG-2 kept for ``buffer.cgi?prebuffer=``.
    mpeg2_prebuffer_seconds: float = 10.0
    #: What the H.264 encode decodes.
    video_source: VideoSource = VideoSource.MJPEG
    #: The shared H.264 encode.
    h264: H264Config = H264Config()
    #: ``source = "sim"``: the container of the simulator's MPEG-2 stream.
    sim_mpeg2_format: ContainerFormat = ContainerFormat.ES

    @property
    def is_sim(self) -> bool:
        """Return True when the camera is the embedded simulator."""
        return self.source == "sim"


def find_camera(cameras: Iterable[CameraConfig], key: str) -> CameraConfig | None:
    """Return the camera named ``key``, else the one at 1-based position ``key`` (DESIGN §5)."""
    cameras = tuple(cameras)
    for cam in cameras:
        if cam.name == key:
            return cam
    if key.isdigit():
        return next((cam for cam in cameras if cam.index == int(key)), None)
    return None


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Where the gateway listens."""

    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Egress and per-client bounds."""

    #: Total egress budget in Mbit/s; 0 means unlimited.
    max_egress_mbps: float = 0.0
    max_clients_per_camera: int = 500
    client_buffer_bytes: int = 4_000_000


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN/TURN server handed to WebRTC peers."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: Secret | None = None


@dataclass(frozen=True, slots=True)
class WebRTCConfig:
    """WebRTC (WHEP) settings."""

    #: STUN/TURN servers for the gateway's peer connections and, as ``Link`` headers,
    #: for the players' (credentials never logged).
    ice_servers: tuple[IceServer, ...] = ()
    #: Local addresses to gather host candidates on; empty: every interface but loopback
    #: (aioice's default).
    addresses: tuple[str, ...] = ()
    #: An address to announce as well, for a 1:1 NAT (a public IP mapped to this host).
    announce: str | None = None
    #: Sessions at most, in total and per camera (``503`` beyond).
    max_sessions: int = 200
    max_sessions_per_camera: int = 100
    #: Seconds a new session has to complete ICE and DTLS before it is closed.
    connect_timeout: float = 10.0
    #: Seconds without any RTCP from a connected peer before its session is closed
    #: (RFC 7675's consent expiry is 30 s).
    consent_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class HLSConfig:
    """LL-HLS segmenting."""

    segment_seconds: float = 1.0
    part_seconds: float = 0.2
    #: Seconds without a request before a camera's segmenter stops.
    idle_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class UserConfig:
    """A user allowed to reach the gateway."""

    name: str
    password: Secret
    role: Role = Role.VIEWER


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The whole validated configuration."""

    cameras: tuple[CameraConfig, ...]
    server: ServerConfig = ServerConfig()
    limits: LimitsConfig = LimitsConfig()
    webrtc: WebRTCConfig = WebRTCConfig()
    hls: HLSConfig = HLSConfig()
    users: tuple[UserConfig, ...] = ()

    def camera(self, key: str) -> CameraConfig | None:
        """Return the camera named ``key`` or at 1-based position ``key``."""
        return find_camera(self.cameras, key)

    def secrets(self) -> tuple[str, ...]:
        """Return every secret value, for redaction."""
        values = [c.password.value for c in self.cameras if c.password is not None]
        values += [u.password.value for u in self.users]
        values += [s.credential.value for s in self.webrtc.ice_servers if s.credential]
        return tuple(v for v in values if v)


class _Table:
    """A TOML table being read: typed getters that name the key in every error."""

    def __init__(self, data: Mapping[str, Any], path: str, env: Mapping[str, str]) -> None:
        self._data = data
        self._path = path
        self._env = env
        self._seen: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def error(self, key: str, message: str) -> ConfigError:
        """Return an error naming ``key`` in this table."""
        return ConfigError(f"{self._key(key)}: {message}")

    def raw(self, key: str) -> Any:
        """Return the value at ``key`` (None if absent), marking the key as known."""
        self._seen.add(key)
        return self._data.get(key)

    def str_(self, key: str, default: str | None = None) -> str | None:
        """Return a string, with ``${ENV}`` references expanded."""
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.error(key, "must be a string")
        return self._expand(key, value)

    def int_(self, key: str, default: int | None = None, *, minimum: int = 1) -> int | None:
        """Return an integer >= ``minimum``."""
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise self.error(key, f"must be {kind}")
        return value

    def float_(
        self, key: str, default: float, *, minimum: float = 0.0, strict: bool = True
    ) -> float:
        """Return a number above (or, if not ``strict``, at least) ``minimum``."""
        value = self.raw(key)
        if value is None:
            return default
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or (value <= minimum if strict else value < minimum):
            bound = "greater than" if strict else "at least"
            raise self.error(key, f"must be a number {bound} {minimum:g}")
        return float(value)

    def bool_(self, key: str, default: bool) -> bool:
        """Return a boolean."""
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def enum_(self, key: str, kind: type[_E], default: _E) -> _E:
        """Return the member of ``kind`` whose value is the string at ``key``."""
        value = self.str_(key)
        if value is None:
            return default
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in kind)
            raise self.error(key, f"must be one of {allowed}") from None

    def table(self, key: str) -> _Table:
        """Return the sub-table at ``key`` (empty if absent)."""
        value = self.raw(key)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.error(key, "must be a table")
        return _Table(value, self._key(key), self._env)

    def tables(self, key: str) -> list[_Table]:
        """Return the array of tables at ``key``."""
        value = self.raw(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(key, "must be an array of tables ([[" + key + "]])")
        return [_Table(v, f"{self._key(key)}[{i + 1}]", self._env) for i, v in enumerate(value)]

    def finish(self) -> None:
        """Raise if the table holds a key nobody asked for."""
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            raise self.error(unknown[0], "unknown key")

    def _expand(self, key: str, value: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self._env:
                raise self.error(key, f"environment variable {name} is not set")
            return self._env[name]

        return _ENV_REF.sub(substitute, value)


def parse_listen(text: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into its parts."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8080")
    host = host.removeprefix("[").removesuffix("]")
    if not host:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def parse_resolution(text: str) -> tuple[int, int]:
    """Parse ``WxH`` into positive integers."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or not int(width) or not int(height):
        raise ValueError("must be WIDTHxHEIGHT with positive integers, e.g. 640x480")
    return int(width), int(height)


def is_loopback(host: str) -> bool:
    """Return True for loopback addresses and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _converted(table: _Table, key: str, parse: Callable[[str], Any]) -> Any:
    text = table.str_(key)
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise table.error(key, str(exc)) from None


def _source(table: _Table) -> str:
    source = table.str_("source")
    if source is None:
        raise table.error("source", 'is required ("sim" or http://camera-host[:port])')
    if source == "sim":
        return source
    parts = urlsplit(source)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise table.error("source", 'must be "sim" or an http:// or https:// camera URL')
    if parts.username or parts.password:
        raise table.error("source", "must not hold credentials; use username and password")
    if parts.path not in ("", "/") or parts.query:
        raise table.error("source", "must be the camera's base URL, without path or query")
    return f"{parts.scheme}://{parts.netloc}"


def _camera(table: _Table, index: int) -> CameraConfig:
    name = table.str_("name")
    if name is None or not _CAMERA_NAME.fullmatch(name) or name.isdigit():
        raise table.error("name", "is required: letters, digits, '.', '_' or '-', not only digits")
    source = _source(table)
    sim = source == "sim"
    password = table.str_("password")
    camera = CameraConfig(
        name=name,
        index=index,
        source=source,
        username=table.str_("username"),
        password=Secret(password) if password is not None else None,
        mjpeg=table.bool_("mjpeg", True),
        mpeg2=table.bool_("mpeg2", sim),
        audio=table.bool_("audio", sim),
        channel=table.int_("channel"),
        fps=table.int_("fps"),
        resolution=_converted(table, "resolution", parse_resolution),
        rate_param=table.enum_("rate_param", RateParam, RateParam.FPS),
        audio_codec=table.enum_("audio_codec", AudioCodec, AudioCodec.G726),
        stall_timeout=table.float_("stall_timeout", 5.0),
        mpeg2_prebuffer_seconds=table.float_("mpeg2_prebuffer_seconds", 10.0, strict=False),
        video_source=table.enum_("video_source", VideoSource, VideoSource.MJPEG),
        h264=_h264(table.table("h264")),
        sim_mpeg2_format=table.enum_("sim_mpeg2_format", ContainerFormat, ContainerFormat.ES),
    )
    if not sim and table.raw("sim_mpeg2_format") is not None:
        raise table.error("sim_mpeg2_format", 'is for source = "sim" only')
    if camera.password is not None and camera.username is None:
        raise table.error("username", "is required when password is set")
    if not (camera.mjpeg or camera.mpeg2 or camera.audio):
        raise table.error("mjpeg", "at least one of mjpeg, mpeg2 and audio must be true")
    if camera.fps is not None and camera.fps > 120:
        raise table.error("fps", "must be at most 120")
    if camera.video_source is VideoSource.MPEG2 and not camera.mpeg2:
        raise table.error("video_source", '"mpeg2" needs mpeg2 = true')
    if camera.video_source is VideoSource.MJPEG and not camera.mjpeg and camera.mpeg2:
        # Without MJPEG the only picture to encode is the MPEG-2 stream.
        camera = replace(camera, video_source=VideoSource.MPEG2)
    table.finish()
    return camera


def _h264(table: _Table) -> H264Config:
    encoder = table.str_("encoder", "libx264") or "libx264"
    if not re.fullmatch(r"[a-z0-9_]{1,32}", encoder):
        raise table.error("encoder", "must be an encoder name such as libx264 or h264_nvenc")
    preset = table.str_("preset", "veryfast") or "veryfast"
    if preset not in _X264_PRESETS:
        raise table.error("preset", f"must be one of {', '.join(_X264_PRESETS)}")
    config = H264Config(
        encoder=encoder,
        preset=preset,
        bitrate_kbps=table.int_("bitrate_kbps", 0, minimum=0) or 0,
        max_size=_converted(table, "max_size", parse_resolution) or (1280, 720),
        keyframe_seconds=table.float_("keyframe_seconds", 0.0) or None,
        max_fps=table.int_("max_fps"),
    )
    if config.max_size[0] < 16 or config.max_size[1] < 16:
        raise table.error("max_size", "must be at least 16x16")
    if config.keyframe_seconds is not None and config.keyframe_seconds > 60:
        raise table.error("keyframe_seconds", "must be at most 60")
    table.finish()
    return config


#: x264's presets, fastest first.
_X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


def _ip(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an IP address string")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def _ip_list(table: _Table, key: str) -> tuple[str, ...]:
    value = table.raw(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise table.error(key, "must be a list of IP address strings")
    try:
        return tuple(_ip(v) for v in value)
    except ValueError as exc:
        raise table.error(key, str(exc)) from None


def _ice_server(value: Any, table: _Table, i: int) -> IceServer:
    key = f"ice_servers[{i + 1}]"
    if isinstance(value, str):
        return IceServer(urls=(value,))
    if not isinstance(value, dict):
        raise table.error(
            key, "must be a URL string or a table {urls=..., username=..., credential=...}"
        )
    entry = _Table(value, table._key(key), table._env)
    urls = entry.raw("urls")
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise entry.error("urls", "must be a URL string or a list of them")
    credential = entry.str_("credential")
    server = IceServer(
        urls=tuple(urls),
        username=entry.str_("username"),
        credential=Secret(credential) if credential is not None else None,
    )
    entry.finish()
    return server


def config_from_dict(
    data: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Validate parsed TOML and return the configuration; errors name the key."""
    root = _Table(data, "", os.environ if env is None else env)

    server = root.table("server")
    host, port = _converted(server, "listen", parse_listen) or ("127.0.0.1", 8080)
    server.finish()

    limits_t = root.table("limits")
    limits = LimitsConfig(
        max_egress_mbps=limits_t.float_("max_egress_mbps", 0.0, strict=False),
        max_clients_per_camera=limits_t.int_("max_clients_per_camera", 500) or 500,
        client_buffer_bytes=limits_t.int_("client_buffer_bytes", 4_000_000) or 4_000_000,
    )
    limits_t.finish()

    webrtc_t = root.table("webrtc")
    ice = webrtc_t.raw("ice_servers") or []
    if not isinstance(ice, list):
        raise webrtc_t.error("ice_servers", "must be a list")
    webrtc = WebRTCConfig(
        ice_servers=tuple(_ice_server(v, webrtc_t, i) for i, v in enumerate(ice)),
        addresses=_ip_list(webrtc_t, "addresses"),
        announce=_converted(webrtc_t, "announce", _ip),
        max_sessions=webrtc_t.int_("max_sessions", 200, minimum=0) or 0,
        max_sessions_per_camera=webrtc_t.int_("max_sessions_per_camera", 100, minimum=0) or 0,
        connect_timeout=webrtc_t.float_("connect_timeout", 10.0),
        consent_timeout=webrtc_t.float_("consent_timeout", 30.0),
    )
    webrtc_t.finish()

    hls_t = root.table("hls")
    hls = HLSConfig(
        segment_seconds=hls_t.float_("segment_seconds", 1.0),
        part_seconds=hls_t.float_("part_seconds", 0.2),
        idle_seconds=hls_t.float_("idle_seconds", 30.0),
    )
    if hls.part_seconds > hls.segment_seconds:
        raise hls_t.error("part_seconds", "must not exceed segment_seconds")
    hls_t.finish()

    users = []
    for user_t in root.tables("users"):
        name = user_t.str_("name")
        password = user_t.str_("password")
        if not name:
            raise user_t.error("name", "is required")
        if not password:
            raise user_t.error("password", "is required")
        users.append(UserConfig(name, Secret(password), user_t.enum_("role", Role, Role.VIEWER)))
        user_t.finish()

    cameras = [_camera(t, i + 1) for i, t in enumerate(root.tables("cameras"))]
    if not cameras:
        raise root.error("cameras", "at least one [[cameras]] entry is required")
    seen: set[str] = set()
    for cam in cameras:
        if cam.name in seen:
            raise ConfigError(f"cameras[{cam.index}].name: duplicate camera name {cam.name!r}")
        seen.add(cam.name)
    root.finish()
    # The encode's keyframes line up with HLS segments unless the camera says otherwise.
    cameras = [
        cam
        if cam.h264.keyframe_seconds is not None
        else replace(cam, h264=replace(cam.h264, keyframe_seconds=hls.segment_seconds))
        for cam in cameras
    ]
    return GatewayConfig(
        cameras=tuple(cameras),
        server=ServerConfig(host, port),
        limits=limits,
        webrtc=webrtc,
        hls=hls,
        users=tuple(users),
    )


def parse_config(text: str, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Parse TOML text into a validated configuration."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}") from None
    return config_from_dict(data, env)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read and validate the configuration file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return parse_config(text, env)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def default_config_text() -> str:
    """Return the embedded default configuration (one simulated camera, ``demo``)."""
    return (Path(__file__).parent / "default.toml").read_text(encoding="utf-8")
