"""The H.264 encode's MPEG-2 input: a camera's MPEG-2 frames in, stamped whole pictures out.

The camera's MPEG-2 ring holds the indexer's units as received (elementary, program or
transport stream, ``Frame.content_type`` says which), for Axis clients. FFmpeg's
``mpeg2video`` decoder wants one coded picture of bare elementary stream at a time, so
the encode's worker thread unwraps them here (``gateway.demux.mpeg2_es``): the Axis
path pays nothing.

- **Where it starts.** At a cut point, with its join (sequence header, and PAT and PMT
  in a transport stream): the first one it is given, and again after a picture was
  dropped in front of the encoder (``reset``: its successors reference it), a new
  upstream connection, or bad input. After an open GOP's join the leading B-pictures
  are left out: they reference the GOP the decoder never had (ISO/IEC 13818-2 §6.3.8).
- **Stamps.** A frame's pts is the time of the picture it describes (its first, or at
  a cut point the GOP's I-picture). A frame holding more pictures (several shared a PES
  packet) gives the others the time their temporal_reference says: their GOP's anchor
  (the described picture's pts less its temporal_reference in frame periods) plus theirs
  (§6.3.9). A GOP whose first picture describes no frame starts where the previous GOP
  ends (its anchor plus its length in periods), as ``gateway.ingest.mpeg2_clock`` does;
  so does a cut point's I-picture that follows other pictures in its frame (it has no
  PES PTS, and the ingest clock, which sees one picture per frame, may count the GOP
  before it short).
- **Arrival.** A picture's ``received_ns`` is that of the frame that completed it: a
  picture whose tail came with the next frame was not whole before.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from gateway.demux.mpeg2 import ContainerFormat, PictureType
from gateway.demux.mpeg2_es import Picture, PictureReader
from gateway.demux.mpeg2_sync import MEDIA_TYPES
from gateway.errors import RemoteProtocolError
from gateway.media import Frame, Payload

#: The container of an MPEG-2 frame, by its media type.
CONTAINERS = {media: container for container, media in MEDIA_TYPES.items()}
#: The frame rate assumed before a sequence header says (§6.3.3).
DEFAULT_RATE = Fraction(25)


@dataclass(frozen=True, slots=True)
class SourcePicture:
    """One picture for the encode pipeline."""

    #: The bytes its decoder takes: one coded picture (or one JPEG).
    data: Payload
    #: Presentation time in the frame's time base (90 kHz).
    pts: int
    #: ``time.monotonic_ns()`` when the frame that completed it arrived.
    received_ns: int


class Mpeg2Pictures:
    """One camera's MPEG-2 frames, in order, to whole stamped pictures; used by one thread."""

    def __init__(self, *, max_picture_size: int = 4 * 2**20) -> None:
        self._max_picture_size = max_picture_size
        self._reader: PictureReader | None = None
        self._frames: dict[int, Frame] = {}  # the frames pictures may still begin in
        self._cut_unit = -1  # the last cut point frame whose described picture was seen
        self._anchor: Fraction | None = None  # time of temporal_reference 0 in this GOP
        self._length = 0  # frames in this GOP so far (greatest temporal_reference + 1)
        self._next: Fraction | None = None  # where the next GOP starts, from the last one
        self._join_open = False  # the join was of an open GOP
        self._lead_tr: int | None = None  # its I-picture's temporal_reference
        #: Joins made; frames skipped while waiting for a cut point; leading pictures
        #: left out after a join.
        self.joins = self.skipped = self.leading_skipped = 0

    def pictures(self, frame: Frame, *, reset: bool = False) -> list[SourcePicture]:
        """Return the pictures ``frame`` completes, in decode order, stamped.

        ``reset``: frames were dropped before this one. Raises ``RemoteProtocolError``
        on bad input, and starts again at the next cut point.
        """
        media = frame.content_type.partition(";")[0].strip().lower()
        container = CONTAINERS.get(media)
        if container is None:
            raise RemoteProtocolError(f"not an MPEG-2 frame: {frame.content_type!r}")
        reader, payload = self._reader, frame.payload
        if reset or frame.seq == 0 or reader is None or reader.container is not container:
            if frame.cut is None:
                self._reader = None
                self.skipped += 1
                return []
            reader, payload = self._join(container, frame)
        unit = reader.units  # the number the reader gives this frame's pictures
        self._frames = {k: f for k, f in self._frames.items() if k == unit - 1}
        self._frames[unit] = frame
        try:
            pictures = reader.feed(payload, continued=frame.continued)
        except RemoteProtocolError:
            self._reader = None
            raise
        period = 1 / ((reader.frame_rate or DEFAULT_RATE) * frame.time_base)
        out: list[SourcePicture] = []
        for picture in pictures:
            began = self._frames.get(picture.unit, frame)  # older: none began in between
            pts = self._stamp(picture, began, period)
            if self._leading(picture):
                self.leading_skipped += 1
            else:
                out.append(SourcePicture(picture.data, pts, frame.received_ns))
        return out

    def stats(self) -> dict[str, int]:
        """Return the counters, for ``/api``."""
        reader = self._reader
        return {
            "joins": self.joins,
            "units_skipped": self.skipped,
            "leading_skipped": self.leading_skipped,
            "pictures": reader.pictures if reader is not None else 0,
        }

    def _join(self, container: ContainerFormat, frame: Frame) -> tuple[PictureReader, Payload]:
        """Start a new reader at cut point ``frame``; return it and what to feed it."""
        assert frame.cut is not None
        self._reader = PictureReader(container, max_picture_size=self._max_picture_size)
        self._frames, self._cut_unit = {}, -1
        self._anchor = self._next = None
        self._length = 0
        self._join_open, self._lead_tr = not frame.cut.closed_gop, None
        self.joins += 1
        return self._reader, frame.join_payload

    def _stamp(self, picture: Picture, frame: Frame, period: Fraction) -> int:
        """Return the pts of ``picture``, which began in ``frame``."""
        tr = picture.temporal_reference
        if picture.gop:
            anchor = self._anchor
            self._next = None if anchor is None else anchor + self._length * period
            self._anchor, self._length = None, 0
        if frame.cut is None:
            described = picture.index == 0
        else:  # a cut point describes the GOP's I-picture, wherever it is in the frame
            described = picture.gop and self._cut_unit != picture.unit
            if described:
                self._cut_unit = picture.unit
                # After other pictures of its frame, no PES PTS is its own (ISO/IEC
                # 13818-1 §2.4.3.7): its time was derived by the ingest clock, which
                # sees one picture per frame; the whole GOP read here says better.
                described = picture.index == 0 or self._next is None
        if described:
            self._anchor = frame.pts - tr * period
        elif self._anchor is None:
            self._anchor = self._next if self._next is not None else frame.pts - tr * period
        self._length = max(self._length, tr + 1)
        return round(self._anchor + tr * period)

    def _leading(self, picture: Picture) -> bool:
        """Return True for a B-picture shown before the I-picture of the GOP joined."""
        if picture.gop:
            self._lead_tr = picture.temporal_reference if self._join_open else None
            self._join_open = False
            return False
        lead = self._lead_tr
        return (
            lead is not None
            and picture.picture_type is PictureType.B
            and picture.temporal_reference < lead
        )
