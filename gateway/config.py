"""Configuration: TOML -> frozen dataclasses, validated, with ``${ENV}`` secrets."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


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
    #: Seconds without a byte before the connection is considered stalled.
    stall_timeout: float = 5.0
    #: Seconds of MPEG-2 kept for ``buffer.cgi?prebuffer=``.
    mpeg2_prebuffer_seconds: float = 10.0

    @property
    def is_sim(self) -> bool:
        """Return True when the camera is the embedded simulator."""
        return self.source == "sim"
