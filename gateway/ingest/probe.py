"""``gateway probe``: connect to a camera and report what it serves, without credentials."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.demux.codec import codec_name, jpeg_size, mpeg_video_info
from gateway.demux.http1 import BodyConsumer, ResponseHead
from gateway.demux.mpeg2 import Mpeg2Indexer, UnitDropped, UnitIndexed
from gateway.demux.multipart import MultipartDemuxer, PartDropped, PartReceived
from gateway.errors import GatewayError, UpstreamError
from gateway.ingest.auth import Authenticator
from gateway.ingest.connection import Target, credentials_from_url, open_stream
from gateway.ingest.kinds import MPEG2_TYPES, STREAM_PATHS
from gateway.ingest.raw import RawConsumer, RawReceived
from gateway.ingest.redact import redact, register_secrets

#: Bytes of an unframed stream kept for codec and size detection.
_SAMPLE_LIMIT = 1 << 20


@dataclass(slots=True)
class EndpointReport:
    """What one URL answered."""

    #: Path and query probed.
    path: str
    #: ``HTTP 200 OK`` style status, None when no response came.
    status: str | None = None
    server: str | None = None
    content_type: str | None = None
    boundary: str | None = None
    #: Frames (JPEG parts, MPEG pictures, audio parts) seen while watching.
    frames: int = 0
    dropped: int = 0
    #: Seconds spent watching the stream.
    watched: float = 0.0
    fps: float | None = None
    resolution: tuple[int, int] | None = None
    codec: str | None = None
    #: MPEG-2: pictures from one cut point to the next (the GOP length), last seen.
    gop: int | None = None
    #: MPEG-2: whether the GOPs seen were closed (None: no GOP seen).
    closed_gop: bool | None = None
    #: Why the endpoint could not be read (redacted).
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Return True when the endpoint streamed media."""
        return self.error is None and self.frames > 0

    def _gop_text(self) -> str | None:
        if self.closed_gop is None:
            return None
        kind = "closed" if self.closed_gop else "open"
        return f"{self.gop} pictures, {kind}" if self.gop else f"{kind} (one seen)"

    def render(self) -> list[str]:
        """Return the report lines for this endpoint."""
        lines = [f"{self.path}: {self.status or self.error}"]
        rows: list[tuple[str, object]] = [
            ("server", self.server),
            ("content type", self.content_type),
            ("boundary", self.boundary),
            ("codec", self.codec),
            ("resolution", "{}x{}".format(*self.resolution) if self.resolution else None),
            ("gop", self._gop_text()),
        ]
        if self.status is not None and self.error is None:
            rate = f" ({self.fps:.1f} per second)" if self.fps is not None else ""
            dropped = f", {self.dropped} dropped" if self.dropped else ""
            rows.append(("frames", f"{self.frames} in {self.watched:.1f} s{rate}{dropped}"))
        if self.status is not None:
            rows.append(("error", self.error))
        lines += [f"  {name + ':':<14}{value}" for name, value in rows if value is not None]
        return lines


@dataclass(slots=True)
class ProbeReport:
    """Everything ``gateway probe`` found."""

    #: The URL probed, without credentials.
    url: str
    endpoints: list[EndpointReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return True if at least one endpoint streamed media."""
        return any(e.ok for e in self.endpoints)

    def render(self) -> str:
        """Return the human-readable report (never holds credentials)."""
        lines = [f"probe {self.url}"]
        for endpoint in self.endpoints:
            lines += endpoint.render()
        return redact("\n".join(lines))


class _Watcher:
    """Count what arrives on one endpoint."""

    def __init__(self, report: EndpointReport) -> None:
        self.report = report
        self.consumer: BodyConsumer | None = None
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.sample = bytearray()
        self.pictures_since_cut: int | None = None

    def accept(self, head: ResponseHead) -> BodyConsumer:
        content_type = head.get("content-type", "") or ""
        media = content_type.split(";", 1)[0].strip().lower()
        consumer: BodyConsumer
        if media.startswith("multipart/"):
            consumer = MultipartDemuxer(content_type, check_jpeg=False)
        elif media in MPEG2_TYPES:
            consumer = Mpeg2Indexer()
        elif media.startswith(("video/", "audio/", "image/")):
            consumer = RawConsumer(media)
        else:
            raise UpstreamError(f"unexpected content type {media or '(none)'}")
        self.consumer = consumer
        return consumer

    def on_events(self, events: list[Any]) -> None:
        now = time.monotonic_ns()
        for event in events:
            if isinstance(event, PartReceived):
                self._count(now)
                self._identify(event.content_type, event.payload)
            elif isinstance(event, PartDropped | UnitDropped):
                self.report.dropped += 1
            elif isinstance(event, UnitIndexed):
                self._unit(now, event)
            elif isinstance(event, RawReceived):
                self._raw(now, event.content_type, event.payload)

    def _count(self, now: int, n: int = 1) -> None:
        if self.first_ns is None:
            self.first_ns = now
        self.last_ns = now
        self.report.frames += n

    def _identify(self, content_type: str, payload: Any) -> None:
        report = self.report
        if report.codec is None:
            report.codec = codec_name(content_type)
            if content_type.lower().startswith("image/jpeg"):
                report.resolution = jpeg_size(payload)

    def _unit(self, now: int, unit: UnitIndexed) -> None:
        report = self.report
        if unit.cut is not None:
            if self.pictures_since_cut is not None:
                report.gop = self.pictures_since_cut
            report.closed_gop = unit.cut.closed_gop
            self.pictures_since_cut = 0
        if not unit.pictures:
            return
        self._count(now, unit.pictures)
        if self.pictures_since_cut is not None:
            self.pictures_since_cut += unit.pictures
        if report.resolution is None:
            info = mpeg_video_info(unit.payload)
            if info is not None:
                report.codec, report.resolution = info

    def _raw(self, now: int, media: str, payload: Any) -> None:
        if len(self.sample) < _SAMPLE_LIMIT:
            self.sample += payload
            if media.startswith("video/") and self.report.resolution is None:
                info = mpeg_video_info(self.sample)
                if info is not None:
                    self.report.codec, self.report.resolution = info
        if self.report.codec is None and not media.startswith("video/"):
            self.report.codec = codec_name(media)

    def finish(self) -> None:
        report = self.report
        if report.content_type and report.content_type.startswith("image/jpeg") and self.sample:
            report.frames = max(report.frames, 1)
            report.resolution = jpeg_size(self.sample)
        if self.first_ns is not None and self.last_ns is not None and report.frames > 1:
            span = (self.last_ns - self.first_ns) / 1e9
            if span > 0:
                report.fps = (report.frames - 1) / span
        boundary = getattr(self.consumer, "boundary", None)
        if isinstance(boundary, bytes):
            report.boundary = boundary.decode("latin-1")


async def _probe_one(
    target: Target, auth: Authenticator | None, response_timeout: float, duration: float
) -> EndpointReport:
    report = EndpointReport(target.target)
    watcher = _Watcher(report)
    try:
        opened = await open_stream(
            target, watcher.accept, watcher.on_events, auth=auth, response_timeout=response_timeout
        )
    except GatewayError as exc:
        report.error = redact(str(exc))
        return report
    head = opened.head
    report.status = head.status_text
    report.server = head.get("server")
    report.content_type = head.get("content-type")
    started = time.monotonic()
    try:
        await asyncio.wait([opened.protocol.closed], timeout=duration)
    finally:
        opened.protocol.abort(UpstreamError("probe finished"))
    report.watched = time.monotonic() - started
    watcher.finish()
    return report


# The CLI contract (docs/interfaces.md) names the parameter ``timeout``.
async def probe(url: str, *, timeout: float = 10.0, duration: float = 2.5) -> ProbeReport:  # noqa: ASYNC109
    """Report what the camera at ``url`` serves.

    :param url: a camera base URL (``http://user:pass@host``: every stream endpoint is
        tried) or one stream URL. Credentials in the URL are used, never shown.
    :param timeout: seconds allowed for each connect plus response head.
    :param duration: seconds each stream is watched to count frames.
    """
    target = Target.parse(url)
    credentials = credentials_from_url(url)
    if credentials is not None:
        register_secrets([credentials[1]])
    if target.target == "/":
        targets = [target.with_target(path) for path in STREAM_PATHS.values()]
    else:
        targets = [target]

    def authenticator() -> Authenticator | None:
        return Authenticator(*credentials) if credentials is not None else None

    endpoints = await asyncio.gather(
        *(_probe_one(t, authenticator(), timeout, duration) for t in targets)
    )
    return ProbeReport(redact(target.with_target(target.target).url), list(endpoints))
