"""A camera's shared H.264 encode: MJPEG or MPEG-2 pictures in, H.264 access units out.

Blocking codec work (PyAV): an ``H264Pipeline`` is owned by one worker thread and is
not thread-safe; its counters may be read from another thread (plain int fields).

**Profile and level.** The stream is Constrained Baseline (``profile_idc`` 66 with
``constraint_set1``; x264 writes ``42c0xx``, the same profile as the ``42e01f`` aiortc
negotiates for WebRTC, and one every MSE implementation plays). Level 3.1 (MaxFS 3600
macroblocks = 1280x720, MaxMBPS 108000 = 720p at 30 fps, ITU-T H.264 Table A-1) holds
the default ``max_size`` at up to 30 fps, and is the floor so small streams say exactly
``avc1.42c01f``. A larger ``max_size`` or frame rate gets the lowest level that holds it
(3.2 for 720p60, 4.0 = ``42c028`` for 1080p30, ...): aiortc's offer says
``level-asymmetry-allowed=1`` (RFC 6184 §8.1), so a sender may exceed the SDP's level.
MSE is given the codec string read from the SPS (``codec``), whatever the level.

**Keyframes.** x264 never places an IDR itself (``keyint=infinite``, ``scenecut=0``).
The pipeline marks a picture as I (an IDR with ``forced-idr``) on the first picture,
after a size change, every ``keyframe_seconds`` of *source* time, and on request
(``force_keyframe``); a request re-anchors the schedule, and ``keyframe_due`` tells a
caller when a request would cost nothing. x264 repeats SPS and PPS before each IDR.

**Time.** Output pts are the pts the caller gave with the source picture (90 kHz).
MPEG-2 pictures arrive in decode order and leave the decoder in display order, one
picture later; each decoded picture takes the smallest stamp still pending, which is
its own PES PTS when the caller passes PES PTS, and keeps arrival stamps (decode order)
evenly spaced in display order. x264 without B-frames emits in order, so pts stay
monotonic; a stamp not above the previous output is dropped (x264 refuses equal pts).

**Colour.** JPEG is full-range BT.601 YCbCr (JFIF). One swscale pass converts it to
limited range (and scales), and the VUI says BT.601, limited range, so decoders turn
it back into the camera's RGB.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import av
from av.video.frame import PictureType
from av.video.reformatter import ColorRange, Interpolation, VideoReformatter

from gateway.demux.codec import jpeg_size
from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.media import VIDEO_TIME_BASE, Payload, StreamKind
from gateway.mux.h264 import codec_string_from_sps, split_access_unit, to_annexb

from .h264_counters import H264Counters
from .h264_encoder import NOT_IN_SAMPLE, PIX_FMT, open_encoder, select_encoder
from .h264_params import DEFAULT_FPS, LIBX264, H264Settings, output_size
from .image import DEFAULT_MAX_SOURCE_PIXELS

_log = logging.getLogger(__name__)

#: FFmpeg decoder of each source stream.
DECODERS: Final = {StreamKind.MJPEG: "mjpeg", StreamKind.MPEG2: "mpeg2video"}
#: Decoded formats that are full range (JPEG's yuvj*); everything else is limited.
FULL_RANGE_FORMATS: Final = frozenset({"yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p"})
#: swscale flags when scaling down: bicubic, FFmpeg's own default for scaling.
SCALE: Final = Interpolation.BICUBIC
#: ... and for the range conversion alone: swscale's fast path, half the time of the
#: others at 1280x720 (0.39 vs 0.70 ms); a 4:2:0 picture comes out within +-2 of theirs.
CONVERT: Final = Interpolation.FAST_BILINEAR
#: JPEG end-of-image marker (ITU-T T.81 B.1.1.3) and how far from the end it is looked
#: for (some cameras pad after it). FFmpeg decodes a cut-off JPEG without complaint,
#: grey below the cut; in H.264 that grey would persist, so such a JPEG is dropped.
JPEG_EOI: Final = b"\xff\xd9"
EOI_WINDOW: Final = 64


@dataclass(frozen=True, slots=True)
class EncodedVideo:
    """One H.264 access unit (one picture), converted once for every consumer."""

    #: Annex B byte stream (start codes), SPS and PPS in-band before an IDR (WebRTC).
    annexb: bytes
    #: MP4 sample: 4-byte lengths, no start codes, no SPS/PPS/AUD/SEI (fMP4, LL-HLS).
    sample: bytes
    #: Presentation time, 90 kHz: the pts the source picture came with.
    pts: int
    #: True for an IDR access unit (a client may start here).
    keyframe: bool
    #: Picture width in pixels.
    width: int
    #: Picture height in pixels.
    height: int
    #: The SPS NAL unit (no start code) on keyframes, for ``avcC``; None otherwise.
    sps: bytes | None = None
    #: The PPS NAL unit (no start code) on keyframes; None otherwise.
    pps: bytes | None = None

    @property
    def codec(self) -> str | None:
        """Return the RFC 6381 codec string (``avc1.42c01f``) on keyframes, else None."""
        return None if self.sps is None else codec_string_from_sps(self.sps)


class H264Pipeline:
    """Decodes one camera's pictures and encodes them as H.264; call from one thread."""

    def __init__(
        self,
        settings: H264Settings,
        *,
        source: StreamKind = StreamKind.MJPEG,
        fps: float | None = None,
        threads: int = 1,
        max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS,
        clock: Callable[[], int] = time.perf_counter_ns,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        """Prepare the encode; a hardware ``settings.encoder`` is tried here, once.

        :param settings: the camera's ``[cameras.h264]``.
        :param source: what ``encode`` is given: JPEG images or MPEG-2 pictures.
        :param fps: the camera's nominal rate (its configured ``fps``); x264's bitrate
            mode and the level assume it. ``max_fps`` caps it; default 25.
        :param threads: encoder threads (x264 slices, 0 = auto); 1 keeps a camera on
            one core: on 2 cores, auto saved under 5% of wall time at 1280x720.
        :param max_source_pixels: larger source pictures are dropped undecoded.
        :param clock: monotonic nanoseconds, for the time counters.
        """
        if source not in DECODERS:
            raise LocalProtocolError(f"no H.264 encode from {source.value}")
        if threads < 0:
            raise LocalProtocolError(f"threads must be >= 0, got {threads}")
        if fps is not None and not fps > 0:
            raise LocalProtocolError(f"fps must be > 0, got {fps}")
        self.settings = settings
        self.source = source
        self.counters = H264Counters()
        self._log = logger or _log
        self._fps = min(fps or DEFAULT_FPS, float(settings.max_fps or fps or DEFAULT_FPS))
        self._threads = threads
        self._max_source_pixels = max_source_pixels
        self._clock = clock
        self._encoder_name = select_encoder(settings, self._log)
        self._decoder: Any = None
        self._encoder: Any = None
        self._reformatter = VideoReformatter()
        #: Source size the encoder was opened for, and the output size.
        self._source_size: tuple[int, int] | None = None
        self._size = (0, 0)
        #: Stamps of pictures given to the decoder and not out of it yet (a heap).
        self._pending: list[int] = []
        self._last_pts: int | None = None
        self._slot: int | None = None
        self._next_key: int | None = None
        self._force = False
        self._sps: bytes | None = None
        self._pps: bytes | None = None

    @property
    def encoder_name(self) -> str:
        """Return the encoder in use (``libx264`` after a fallback)."""
        return self._encoder_name

    @property
    def codec(self) -> str | None:
        """Return the RFC 6381 codec string of the current SPS (None before the first)."""
        return None if self._sps is None else codec_string_from_sps(self._sps)

    def keyframe_due(self, pts: int) -> bool:
        """Return True when the next picture, at ``pts``, is an IDR anyway.

        Reads two fields only, so another thread may ask (a stale answer costs at most
        one extra IDR).
        """
        return self._encoder is None or self._next_key is None or pts >= self._next_key

    def encode(
        self, payload: Payload, pts: int, *, force_keyframe: bool = False
    ) -> list[EncodedVideo]:
        """Return the access units that source picture ``payload`` (at ``pts``) completes.

        A JPEG gives zero or one; an MPEG-2 picture zero, one or two (reordering). A
        picture that does not decode is counted and skipped. ``force_keyframe`` makes
        the next encoded picture an IDR (this one, unless it is dropped or held).
        """
        started = self._clock()
        counters = self.counters
        counters.frames_in += 1
        self._force = self._force or force_keyframe
        out: list[EncodedVideo] = []
        # A JPEG stands alone: drop it before paying for its decode.
        if self.source is not StreamKind.MJPEG or self._admit(pts):
            for picture, stamp in self._decode(payload, pts):
                if self.source is StreamKind.MJPEG or self._admit(stamp):
                    out.extend(self._encode(picture, stamp))
        counters.busy_ns_last = self._clock() - started
        counters.busy_ns_total += counters.busy_ns_last
        return out

    def flush(self) -> list[EncodedVideo]:
        """Return the access units of pictures the decoder still holds (end of stream)."""
        out: list[EncodedVideo] = []
        if self._decoder is not None:
            for picture, stamp in self._drain(None):
                if self._admit(stamp):
                    out.extend(self._encode(picture, stamp))
            self._decoder = None  # a drained FFmpeg decoder takes no more input
        self._pending.clear()
        return out

    def close(self) -> None:
        """Free the decoder and the encoder now (x264 holds megabytes); a next picture
        opens them again."""
        self._decoder = self._encoder = None
        self._pending.clear()

    def _admit(self, stamp: int) -> bool:
        """Return True when the picture at ``stamp`` is to be encoded (else count it)."""
        if self._last_pts is not None and stamp <= self._last_pts:
            self.counters.skipped_pts += 1
            return False
        ticks = self.settings.frame_ticks
        # A schedule of one max_fps interval per picture, with a third of an interval
        # of slack: a source at max_fps whose frames wander +-20% around their clock
        # loses none, while 30 fps capped at 15 still keeps exactly every other frame.
        if ticks is not None and self._slot is not None and stamp < self._slot - ticks // 3:
            self.counters.skipped_max_fps += 1
            return False
        return True

    def _commit(self, stamp: int) -> None:
        """Record that the picture at ``stamp`` was encoded."""
        self._last_pts = stamp
        ticks = self.settings.frame_ticks
        if ticks is not None:
            # The next slot is one interval on; never earlier than slack allows, so
            # credit does not build up while the source runs slower than max_fps.
            slot = stamp if self._slot is None else max(self._slot, stamp - ticks // 3)
            self._slot = slot + ticks

    def _decode(self, payload: Payload, pts: int) -> list[tuple[Any, int]]:
        """Return the decoded pictures ``payload`` releases, with their stamps."""
        if self.source is StreamKind.MJPEG:
            size = jpeg_size(payload)
            if size is None:
                return self._fail("source frame is not a JPEG (no SOI/SOF)")
            if size[0] * size[1] > self._max_source_pixels:
                return self._fail(f"source JPEG {size[0]}x{size[1]} is too large")
            if JPEG_EOI not in bytes(payload[-EOI_WINDOW:]):
                return self._fail("source JPEG is cut short (no EOI)")
        if self._decoder is None:
            decoder = av.CodecContext.create(DECODERS[self.source], "r")
            # Frame threads would delay every picture; one camera keeps to one core.
            decoder.thread_count = 1
            self._decoder = decoder
        heapq.heappush(self._pending, pts)
        # Packet takes any buffer (the stubs say bytes); it copies once either way.
        return self._drain(av.Packet(cast(bytes, payload)))

    def _drain(self, packet: Any) -> list[tuple[Any, int]]:
        """Feed ``packet`` (None: end of stream) and stamp what comes out."""
        try:
            pictures = self._decoder.decode(packet)
        except av.FFmpegError as exc:
            self._decoder = None  # start clean: the next picture must not inherit state
            self._pending.clear()
            return self._fail(f"undecodable {self.source.value} picture: {exc}")
        stamped = []
        for picture in pictures:
            if not self._pending:
                # More pictures than inputs (two pictures in one input): the decoder
                # keeps its references, only this picture is not encoded.
                self._fail(f"{self.source.value} input held more than one picture")
                continue
            stamped.append((picture, heapq.heappop(self._pending)))
        # The decoder holds at most has_b_frames pictures; older stamps are of pictures
        # it dropped (a JPEG with no image, B-pictures without their references).
        while len(self._pending) > int(self._decoder.has_b_frames or 0):
            heapq.heappop(self._pending)
            self._fail(f"{self.source.value} picture decoded to nothing")
        return stamped

    def _fail(self, reason: str) -> list[tuple[Any, int]]:
        """Count a source picture that does not decode; return no pictures."""
        self.counters.failed += 1
        self.counters.last_error = reason
        return []

    def _encode(self, picture: Any, stamp: int) -> list[EncodedVideo]:
        """Convert and encode one decoded picture shown at ``stamp``."""
        counters = self.counters
        source_size = (picture.width, picture.height)
        if source_size[0] * source_size[1] > self._max_source_pixels:
            self._fail(f"source picture {source_size[0]}x{source_size[1]} is too large")
            return []
        decoded = self._clock()
        reopen = source_size != self._source_size or self._encoder is None
        if reopen and not self._open(source_size):
            return []
        width, height = self._size
        full = picture.color_range == ColorRange.JPEG or picture.format.name in FULL_RANGE_FORMATS
        # One swscale pass: scale, 4:2:x -> 4:2:0, full -> limited range (a no-op for
        # MPEG-2 at the output size, when reformat hands the picture back as is).
        frame = self._reformatter.reformat(
            picture,
            width=width,
            height=height,
            format=PIX_FMT,
            src_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
            dst_color_range=ColorRange.MPEG,
            interpolation=SCALE if (width, height) != self._source_size else CONVERT,
            threads=1,
        )
        converted = self._clock()
        counters.convert_ns_total += converted - decoded
        key = self._keyframe(stamp)
        frame.pts = stamp
        frame.time_base = VIDEO_TIME_BASE
        # Decoded JPEGs say I: anything not chosen here must go in as "encoder decides".
        frame.pict_type = PictureType.I if key else PictureType.NONE
        try:
            packets = self._encoder.encode(frame)
        except av.FFmpegError as exc:
            self._encoder = None  # reopened (with an IDR) by the next picture
            self._fail(f"{self._encoder_name} failed: {exc}")
            return []
        self._commit(stamp)
        out = []
        for packet in packets:
            try:
                out.append(self._unit(bytes(packet), packet.pts))
            except RemoteProtocolError as exc:  # not H.264 Annex B: no access unit
                self._fail(f"{self._encoder_name} wrote a bad access unit: {exc}")
        counters.encode_ns_total += self._clock() - converted
        counters.frames_out += len(out)
        if key and not any(unit.keyframe for unit in out):
            counters.keyframes_missed += 1
        return out

    def _open(self, source_size: tuple[int, int]) -> bool:
        """(Re)open the encoder for pictures of ``source_size``; False when it fails."""
        size = output_size(source_size, self.settings.max_size)
        if self._encoder is not None:
            self.counters.reopens += 1
        self._encoder = None
        try:
            self._encoder = open_encoder(
                self._encoder_name, self.settings, size, self._fps, threads=self._threads
            )
        except (av.FFmpegError, ValueError) as exc:
            if self._encoder_name == LIBX264:
                self._fail(f"{LIBX264} does not open at {size[0]}x{size[1]}: {exc}")
                return False
            self._log.warning(
                "H.264 encoder %s failed at %dx%d (%s); using %s",
                self._encoder_name,
                *size,
                exc,
                LIBX264,
            )
            self._encoder_name = LIBX264
            return self._open(source_size)
        self._source_size, self._size = source_size, size
        # A new encoder starts with an IDR; the schedule starts there.
        self._next_key = None
        return True

    def _keyframe(self, stamp: int) -> bool:
        """Return True when the picture at ``stamp`` is to be an IDR; update the schedule."""
        ticks = self.settings.keyframe_ticks
        counters = self.counters
        if self._next_key is None or stamp >= self._next_key:
            counters.keyframes_periodic += 1
            # On the grid of keyframe_seconds, so IDRs average exactly that interval;
            # restart the grid after a gap longer than one interval.
            due = self._next_key
            self._next_key = (
                due + ticks if due is not None and due + ticks > stamp else stamp + ticks
            )
        elif self._force:
            counters.keyframes_forced += 1
            self._next_key = stamp + ticks
        else:
            return False
        self._force = False
        return True

    def _unit(self, data: bytes, pts: int) -> EncodedVideo:
        """Return the ``EncodedVideo`` of one packet."""
        unit = split_access_unit(data, drop=NOT_IN_SAMPLE)
        sps, pps = unit.sps or self._sps, unit.pps or self._pps
        self._sps, self._pps = sps, pps
        if unit.idr and (unit.sps is None or unit.pps is None) and sps and pps:
            # An encoder that keeps them out of band: put them in, so joins still work.
            data = to_annexb((sps, pps)) + data
        keyframe = unit.idr
        width, height = self._size
        return EncodedVideo(
            data,
            unit.sample,
            pts,
            keyframe,
            width,
            height,
            sps if keyframe else None,
            pps if keyframe else None,
        )
