"""Multipart framing of the simulator's streams, with the quirks applied (VAPIX §5.2.7, §5.5.2)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from gateway.sim.options import Quirk, Quirks

#: The boundary Axis cameras propose (§5.2.7).
BOUNDARY = "myboundary"
#: Text sent before the first delimiter under the ``preamble`` quirk.
PREAMBLE = b"This is a multi-part message from the Axis camera simulator."
#: Every n-th part declares a wrong length under ``wrong-content-length``.
WRONG_LENGTH_EVERY = 5
#: How far off the wrong lengths are: short, then long, alternately.
WRONG_LENGTH_DELTAS = (-7, 9)


@dataclass(frozen=True, slots=True)
class Framing:
    """How one multipart response is laid out."""

    #: The Content-Type header value of the response.
    content_type: str
    #: The boundary the body uses, without the leading ``--``.
    boundary: bytes
    #: Line ending of the framing: CRLF, or LF under ``lf-only``.
    eol: bytes
    #: Part headers carry Content-Length.
    content_length: bool
    #: Every WRONG_LENGTH_EVERY-th part lies about its length.
    wrong_length: bool
    #: Blank lines before the first delimiter and after each payload.
    extra_blank_lines: bool
    #: The blank line between part headers and payload is sent.
    header_blank_line: bool
    #: A delimiter precedes the first part.
    initial_boundary: bool
    #: Text before the first delimiter.
    preamble: bytes

    def opening(self) -> bytes:
        """Return what precedes the first part's headers."""
        out = self.preamble + self.eol if self.preamble else b""
        if self.extra_blank_lines:
            out += self.eol
        if self.initial_boundary:
            out += b"--" + self.boundary + self.eol
        return out

    def head(
        self, content_type: str, size: int, number: int, extra: tuple[tuple[str, str], ...] = ()
    ) -> bytes:
        """Return the part headers and the blank line for part number (0-based)."""
        lines = [f"Content-Type: {content_type}"]
        if self.content_length:
            declared = size
            if self.wrong_length and number % WRONG_LENGTH_EVERY == WRONG_LENGTH_EVERY - 1:
                turn = number // WRONG_LENGTH_EVERY % len(WRONG_LENGTH_DELTAS)
                declared += WRONG_LENGTH_DELTAS[turn]
            lines.append(f"Content-Length: {declared}")
        lines.extend(f"{name}: {value}" for name, value in extra)
        text = self.eol.join(line.encode("ascii") for line in lines) + self.eol
        return text + self.eol if self.header_blank_line else text

    def tail(self) -> bytes:
        """Return what follows a payload: the delimiter that opens the next part."""
        blank = self.eol * 2 if self.extra_blank_lines else b""
        return self.eol + blank + b"--" + self.boundary + self.eol

    def close_line(self) -> bytes:
        """Return a line break and the close delimiter (RFC 2046 §5.1.1) with its line break.

        Sent after a ``tail`` it ends the body with an empty part, as the RFC allows.
        """
        return self.eol + b"--" + self.boundary + b"--" + self.eol

    def part(
        self,
        payload: bytes,
        content_type: str,
        number: int,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> bytes:
        """Return one whole part: headers, payload and the next delimiter."""
        head = self.head(content_type, len(payload), number, extra)
        return b"".join((head, payload, self.tail()))


def make_framing(quirks: Quirks, *, content_length: bool, audio: bool = False) -> Framing:
    """Return the framing for a response under quirks.

    content_length: parts carry Content-Length unless a quirk removes it.
    audio: the response is an audio stream (``audio-no-blank-line`` applies).
    """
    boundary = BOUNDARY
    if Quirk.NEW_BOUNDARY in quirks:
        boundary = "sim" + secrets.token_hex(8)
    declared = boundary
    body = boundary
    if Quirk.BOUNDARY_MISMATCH in quirks:
        body = "other" + boundary
    if Quirk.BOUNDARY_DASHES in quirks:
        # Some firmware declares the delimiter line itself: the body's lines are then
        # "--myboundary", not the "----myboundary" RFC 2046 §5.1.1 would give.
        declared = "--" + declared
    if Quirk.BOUNDARY_QUOTED in quirks:
        declared = f'"{declared}"'
    return Framing(
        content_type=f"multipart/x-mixed-replace;boundary={declared}",
        boundary=body.encode("ascii"),
        eol=b"\n" if Quirk.LF_ONLY in quirks else b"\r\n",
        content_length=content_length and Quirk.NO_CONTENT_LENGTH not in quirks,
        wrong_length=Quirk.WRONG_CONTENT_LENGTH in quirks,
        extra_blank_lines=Quirk.EXTRA_BLANK_LINES in quirks,
        header_blank_line=not (audio and Quirk.AUDIO_NO_BLANK_LINE in quirks),
        initial_boundary=Quirk.NO_INITIAL_BOUNDARY not in quirks,
        preamble=PREAMBLE if Quirk.PREAMBLE in quirks else b"",
    )
