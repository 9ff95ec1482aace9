"""What one shared H.264 encode did, for ``/api`` and ``/metrics``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class H264Counters:
    """Counters of one ``H264Pipeline`` (written by its thread; plain ints, read anywhere)."""

    #: Source pictures (JPEGs or MPEG-2 pictures) given to ``encode``.
    frames_in: int = 0
    #: H.264 access units produced.
    frames_out: int = 0
    #: Source pictures dropped by ``max_fps``.
    skipped_max_fps: int = 0
    #: Source pictures dropped because their pts was not above the previous output.
    skipped_pts: int = 0
    #: Source pictures that did not decode (or convert, or encode).
    failed: int = 0
    #: IDR pictures made on request (not due by the schedule anyway).
    keyframes_forced: int = 0
    #: IDR pictures made by the schedule (including the first and after a reopen).
    keyframes_periodic: int = 0
    #: Pictures sent as IDR that came out without an IDR slice (encoder ignored it).
    keyframes_missed: int = 0
    #: Encoder reopened for a new source size.
    reopens: int = 0
    #: Reason of the most recent failure.
    last_error: str | None = None
    #: Time converting pictures (scale, range), nanoseconds.
    convert_ns_total: int = 0
    #: Time encoding pictures, nanoseconds.
    encode_ns_total: int = 0
    #: Time in ``encode`` calls (decode + convert + encode + bookkeeping), nanoseconds.
    busy_ns_total: int = 0
    #: Time of the most recent ``encode`` call, nanoseconds.
    busy_ns_last: int = 0

    def snapshot(self) -> dict[str, object]:
        """Return the counters as a JSON-ready dict (with mean milliseconds per picture)."""
        done = max(self.frames_out, 1)
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "skipped_max_fps": self.skipped_max_fps,
            "skipped_pts": self.skipped_pts,
            "failed": self.failed,
            "keyframes_forced": self.keyframes_forced,
            "keyframes_periodic": self.keyframes_periodic,
            "keyframes_missed": self.keyframes_missed,
            "reopens": self.reopens,
            "last_error": self.last_error,
            "convert_ms_mean": round(self.convert_ns_total / done / 1e6, 3),
            "encode_ms_mean": round(self.encode_ns_total / done / 1e6, 3),
            "busy_ms_mean": round(self.busy_ns_total / max(self.frames_in, 1) / 1e6, 3),
            "busy_ms_last": round(self.busy_ns_last / 1e6, 3),
            "busy_seconds_total": self.busy_ns_total / 1e9,
        }
