"""Events of the multipart demuxer (frozen, slotted: STYLE §8)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.demux.parts import DropReason
from gateway.media import Payload


@dataclass(frozen=True, slots=True)
class PartReceived:
    """A complete part: one JPEG frame, one audio block, or any other part."""

    #: The body: a read-only view of the buffer the bytes landed in, or bytes.
    payload: Payload
    #: Media type as sent, without parameters (sniffed as image/jpeg when undeclared).
    content_type: str
    #: All part headers as (lower-case name, value), in the order received.
    headers: tuple[tuple[str, str], ...]
    #: The declared Content-Length, or None when the part was delimited by its boundary.
    content_length: int | None


@dataclass(frozen=True, slots=True)
class PartDropped:
    """A part that was received but not delivered (torn JPEG, wrong length, truncated)."""

    #: Why it was dropped.
    reason: DropReason
    #: Body bytes the part occupied in the stream.
    size: int


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The close delimiter (``--boundary--``) or the end of the connection was reached."""

    #: True when the close delimiter ended the body: the connection may still be open
    #: (and the caller should close it); False at the end of the connection.
    by_delimiter: bool = False


Event = PartReceived | PartDropped | StreamEnded
