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
from typing import Any
from urllib.parse import urlsplit

from gateway.config_table import Reader
from gateway.config_table import Table as _Table
from gateway.demux.mpeg2_sync import ContainerFormat
from gateway.errors import ConfigError

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
    #: Open the upstream streams only while something consumes them (DESIGN §4).
    on_demand: bool = False
    #: Seconds an on-demand stream stays open after its last consumer left.
    idle_seconds: float = 60.0

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
    """Where the gateway listens, and the bounds on its connections (``gateway/server``)."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: Seconds a connection has to send a complete request head (from connect, or from
    #: the first byte after a keep-alive pause): slowloris clients are closed at it.
    header_timeout: float = 10.0
    #: Seconds a keep-alive connection may stay idle after its last response.
    keepalive_timeout: float = 15.0
    #: Connections at most, in total (also kept under the open-file limit) ...
    max_connections: int = 4000
    #: ... and from one client address; ``503`` beyond.
    max_connections_per_address: int = 500


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
    #: Put audio and video in one synchronised stream: browsers then hold each
    #: picture back to the audio's (longer) delay. Off: the picture plays as soon as it
    #: arrives and the sound a few tens of milliseconds after it.
    lip_sync: bool = False


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
    #: Names of the cameras the user may see and use; None: every camera.
    cameras: tuple[str, ...] | None = None


#: The shortest ``[tokens] key`` accepted (characters); ``openssl rand -base64 32`` gives 44.
MIN_TOKEN_KEY = 16
#: The longest token lifetime, seconds (a year and a day).
MAX_TOKEN_TTL = 366 * 86400


@dataclass(frozen=True, slots=True)
class TokensConfig:
    """Signed, expiring viewing tokens for players without Basic auth (``[tokens]``)."""

    #: The HMAC-SHA256 signing key; None: tokens are off.
    key: Secret | None = None
    #: Seconds a token lives when its issuer names no lifetime.
    default_ttl: int = 3600


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The whole validated configuration."""

    cameras: tuple[CameraConfig, ...]
    server: ServerConfig = ServerConfig()
    limits: LimitsConfig = LimitsConfig()
    webrtc: WebRTCConfig = WebRTCConfig()
    hls: HLSConfig = HLSConfig()
    users: tuple[UserConfig, ...] = ()
    tokens: TokensConfig = TokensConfig()

    def camera(self, key: str) -> CameraConfig | None:
        """Return the camera named ``key`` or at 1-based position ``key``."""
        return find_camera(self.cameras, key)

    def secrets(self) -> tuple[str, ...]:
        """Return every secret value, for redaction."""
        values = [c.password.value for c in self.cameras if c.password is not None]
        values += [u.password.value for u in self.users]
        values += [s.credential.value for s in self.webrtc.ice_servers if s.credential]
        if self.tokens.key is not None:
            values.append(self.tokens.key.value)
        return tuple(v for v in values if v)


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
        table.error(key, str(exc))
        return None


def _source(table: _Table) -> str | None:
    source = table.str_("source")
    if source is None:
        table.error("source", 'is required ("sim" or http://camera-host[:port])', causes=["source"])
        return None
    if source == "sim":
        return source
    parts = urlsplit(source)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        table.error("source", 'must be "sim" or an http:// or https:// camera URL')
    elif parts.username or parts.password:
        table.error("source", "must not hold credentials; use username and password")
    elif parts.path not in ("", "/") or parts.query:
        table.error("source", "must be the camera's base URL, without path or query")
    else:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def _camera(table: _Table, index: int) -> CameraConfig:
    name = table.str_("name")
    if name is None or not _CAMERA_NAME.fullmatch(name) or name.isdigit():
        message = "is required: letters, digits, '.', '_' or '-', not only digits"
        table.error("name", message, causes=["name"])
        name = ""
    source = _source(table)
    sim = source == "sim"
    password = table.str_("password")
    camera = CameraConfig(
        name=name,
        index=index,
        source=source or "",
        username=table.str_("username"),
        password=Secret(password) if password is not None else None,
        mjpeg=table.bool_("mjpeg", True),
        mpeg2=table.bool_("mpeg2", sim),
        audio=table.bool_("audio", sim),
        channel=table.int_("channel"),
        fps=table.int_("fps", maximum=120),
        resolution=_converted(table, "resolution", parse_resolution),
        rate_param=table.enum_("rate_param", RateParam, RateParam.FPS),
        audio_codec=table.enum_("audio_codec", AudioCodec, AudioCodec.G726),
        stall_timeout=table.float_("stall_timeout", 5.0),
        mpeg2_prebuffer_seconds=table.float_("mpeg2_prebuffer_seconds", 10.0, strict=False),
        video_source=table.enum_("video_source", VideoSource, VideoSource.MJPEG),
        h264=_h264(table.table("h264")),
        sim_mpeg2_format=table.enum_("sim_mpeg2_format", ContainerFormat, ContainerFormat.ES),
        on_demand=table.bool_("on_demand", False),
        idle_seconds=table.float_("idle_seconds", 60.0, strict=False),
    )
    if not sim and table.raw("sim_mpeg2_format") is not None:
        table.error("sim_mpeg2_format", 'is for source = "sim" only', causes=["source"])
    if camera.password is not None and camera.username is None:
        table.error("username", "is required when password is set", causes=["username"])
    if not (camera.mjpeg or camera.mpeg2 or camera.audio):
        message = "at least one of mjpeg, mpeg2 and audio must be true"
        table.error("mjpeg", message, causes=["mjpeg", "mpeg2", "audio"])
    if camera.video_source is VideoSource.MPEG2 and not camera.mpeg2:
        table.error("video_source", '"mpeg2" needs mpeg2 = true', causes=["mpeg2"])
    if camera.video_source is VideoSource.MJPEG and not camera.mjpeg and camera.mpeg2:
        # Without MJPEG the only picture to encode is the MPEG-2 stream.
        camera = replace(camera, video_source=VideoSource.MPEG2)
    table.finish()
    return camera


def _h264(table: _Table) -> H264Config:
    encoder = table.str_("encoder", "libx264") or "libx264"
    if not re.fullmatch(r"[a-z0-9_]{1,32}", encoder):
        table.error("encoder", "must be an encoder name such as libx264 or h264_nvenc")
    preset = table.str_("preset", "veryfast") or "veryfast"
    if preset not in _X264_PRESETS:
        table.error("preset", f"must be one of {', '.join(_X264_PRESETS)}")
    config = H264Config(
        encoder=encoder,
        preset=preset,
        bitrate_kbps=table.int_("bitrate_kbps", 0, minimum=0) or 0,
        max_size=_converted(table, "max_size", parse_resolution) or (1280, 720),
        keyframe_seconds=table.float_("keyframe_seconds", 0.0, maximum=60) or None,
        max_fps=table.int_("max_fps"),
    )
    if config.max_size[0] < 16 or config.max_size[1] < 16:
        table.error("max_size", "must be at least 16x16")
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
        table.error(key, "must be a list of IP address strings")
        return ()
    try:
        return tuple(_ip(v) for v in value)
    except ValueError as exc:
        table.error(key, str(exc))
        return ()


#: A STUN or TURN server URL (RFC 7064, RFC 7065): ``turn:host[:port][?transport=udp|tcp]``.
_ICE_URL = re.compile(
    r"(?P<scheme>stuns?|turns?):(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?(?:\?transport=(?P<transport>udp|tcp))?"
)


def _ice_url(url: str) -> bool:
    """Return True for a STUN or TURN URL a peer connection accepts."""
    match = _ICE_URL.fullmatch(url)
    if match is None:
        return False
    if match["scheme"].startswith("stun") and match["transport"]:
        return False  # RFC 7064: a STUN URI has no transport
    return match["port"] is None or 0 < int(match["port"]) <= 65535


def _ice_server(value: Any, table: _Table, i: int) -> IceServer | None:
    key = f"ice_servers[{i + 1}]"
    if isinstance(value, str):
        entry, urls = None, [value]
    elif isinstance(value, dict):
        entry = table.entry(key, value)
        urls = entry.raw("urls")
        urls = [urls] if isinstance(urls, str) else urls
    else:
        message = "must be a URL string or a table {urls=..., username=..., credential=...}"
        table.error(key, message)
        return None
    where, url_key = (table, key) if entry is None else (entry, "urls")
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        where.error(url_key, "must be a URL string or a list of them")
        urls = []
    for url in urls:
        if not _ice_url(url):
            message = f"{url!r} is not stun:HOST[:PORT] or turn:HOST[:PORT][?transport=udp|tcp]"
            where.error(url_key, message)
    if entry is None:
        return IceServer(urls=tuple(urls))
    credential = entry.str_("credential")
    server = IceServer(
        urls=tuple(urls),
        username=entry.str_("username"),
        credential=Secret(credential) if credential is not None else None,
    )
    entry.finish()
    return server


def _names(table: _Table, key: str) -> tuple[str, ...] | None:
    """Return a list of camera names (None if absent)."""
    value = table.raw(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise table.error(key, 'must be a list of camera names, e.g. ["front", "yard"]')
    return tuple(dict.fromkeys(value))


def _tokens(table: _Table) -> TokensConfig:
    key = table.str_("key")
    if key is not None and len(key) < MIN_TOKEN_KEY:
        # A short key is a guessable key: every token it signs could be forged.
        raise table.error("key", f"must be at least {MIN_TOKEN_KEY} characters")
    tokens = TokensConfig(
        key=Secret(key) if key is not None else None,
        default_ttl=table.int_("default_ttl", 3600) or 3600,
    )
    if tokens.default_ttl > MAX_TOKEN_TTL:
        raise table.error("default_ttl", f"must be at most {MAX_TOKEN_TTL} seconds")
    table.finish()
    return tokens


def _server(table: _Table) -> ServerConfig:
    host, port = _converted(table, "listen", parse_listen) or ("127.0.0.1", 8080)
    max_connections = table.int_("max_connections", 4000) or 4000
    per_address = table.int_("max_connections_per_address")
    if per_address is not None and per_address > max_connections:
        table.error("max_connections_per_address", "must not exceed max_connections")
    config = ServerConfig(
        host=host,
        port=port,
        header_timeout=table.float_("header_timeout", 10.0),
        keepalive_timeout=table.float_("keepalive_timeout", 15.0),
        max_connections=max_connections,
        max_connections_per_address=per_address or min(500, max_connections),
    )
    for key in ("header_timeout", "keepalive_timeout"):
        if getattr(config, key) > 3600:
            table.error(key, "must be at most 3600 seconds")
    table.finish()
    return config


def config_from_dict(
    data: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Validate parsed TOML and return the configuration.

    Raises one ConfigError holding every problem found, each naming its key.
    """
    reader = Reader(os.environ if env is None else env)
    config: GatewayConfig | None
    try:
        config = _read(reader.root(data))
    except ConfigError as exc:  # a check that could not go on: report what it found
        reader.add_raised(exc)
        config = None
    errors = reader.errors()
    if errors or config is None:
        raise ConfigError(*errors)
    return config


def _read(root: _Table) -> GatewayConfig:
    server = _server(root.table("server"))

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
        webrtc_t.error("ice_servers", "must be a list")
        ice = []
    servers = [_ice_server(v, webrtc_t, i) for i, v in enumerate(ice)]
    webrtc = WebRTCConfig(
        ice_servers=tuple(s for s in servers if s is not None),
        addresses=_ip_list(webrtc_t, "addresses"),
        announce=_converted(webrtc_t, "announce", _ip),
        max_sessions=webrtc_t.int_("max_sessions", 200, minimum=0) or 0,
        max_sessions_per_camera=webrtc_t.int_("max_sessions_per_camera", 100, minimum=0) or 0,
        connect_timeout=webrtc_t.float_("connect_timeout", 10.0),
        consent_timeout=webrtc_t.float_("consent_timeout", 30.0),
        lip_sync=webrtc_t.bool_("lip_sync", False),
    )
    webrtc_t.finish()

    hls_t = root.table("hls")
    hls = HLSConfig(
        segment_seconds=hls_t.float_("segment_seconds", 1.0),
        part_seconds=hls_t.float_("part_seconds", 0.2),
        idle_seconds=hls_t.float_("idle_seconds", 30.0),
    )
    if hls.part_seconds > hls.segment_seconds:
        causes = ["part_seconds", "segment_seconds"]
        hls_t.error("part_seconds", "must not exceed segment_seconds", causes=causes)
    hls_t.finish()

    users: list[UserConfig] = []
    user_names: set[str] = set()
    user_tables = root.tables("users")
    for user_t in user_tables:
        name = user_t.str_("name")
        password = user_t.str_("password")
        if not name:
            user_t.error("name", "is required", causes=["name"])
        elif name in user_names:
            user_t.error("name", f"duplicate user name {name!r}")
        user_names.add(name or "")
        if not password:
            user_t.error("password", "is required", causes=["password"])
        role = user_t.enum_("role", Role, Role.VIEWER)
        users.append(
            UserConfig(name or "", Secret(password or ""), role, _names(user_t, "cameras"))
        )
        user_t.finish()

    tokens = _tokens(root.table("tokens"))

    camera_tables = root.tables("cameras")
    cameras = [_camera(t, i + 1) for i, t in enumerate(camera_tables)]
    if not cameras:
        root.error("cameras", "at least one [[cameras]] entry is required", causes=["cameras"])
    names: set[str] = set()
    for cam, cam_t in zip(cameras, camera_tables, strict=True):
        if cam.name and cam.name in names:
            cam_t.error("name", f"duplicate camera name {cam.name!r}")
        names.add(cam.name)
    for user_t, user in zip(user_tables, users, strict=True):
        unknown = [name for name in user.cameras or () if name not in names]
        if unknown:
            known = ", ".join(cam.name for cam in cameras)
            user_t.error("cameras", f"unknown camera {unknown[0]!r} (cameras: {known})")
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
        server=server,
        limits=limits,
        webrtc=webrtc,
        hls=hls,
        users=tuple(users),
        tokens=tokens,
    )


def parse_config(text: str, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Parse TOML text into a validated configuration (ConfigError: every problem)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}") from None
    return config_from_dict(data, env)


def read_config_text(path: str | Path) -> str:
    """Return the text of the configuration file at ``path``."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read: not UTF-8 text") from None


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read and validate the configuration file at ``path``; errors are prefixed with it."""
    text = read_config_text(path)
    try:
        return parse_config(text, env)
    except ConfigError as exc:
        raise ConfigError(*(f"{path}: {m}" for m in exc.messages)) from None


def default_config_text() -> str:
    """Return the embedded default configuration (one simulated camera, ``demo``)."""
    return (Path(__file__).parent / "default.toml").read_text(encoding="utf-8")
