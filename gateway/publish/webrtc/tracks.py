"""Tracks that hand aiortc the shared encode's packets, and the hooks on its senders.

aiortc's ``RTCRtpSender`` pulls from a track and, for anything that is not a decoded
frame, calls its encoder's ``pack`` instead of encoding: pre-encoded media goes out
without an encoder per viewer. ``SharedTrack`` reads a hub ``Cursor`` on the camera's
H.264 or Opus ring, with the cut-to-keyframe policy of every other reader (a viewer
that falls ``maxlag`` behind resumes at the newest keyframe; nothing queues per
viewer), and hands over the frame's RTP payloads, prepared once for all sessions
(``PreparedFrames``). ``bind_sender`` gives a sender a packer that passes those
payloads through, sends PLI and FIR to the shared encode's rate-limited keyframe
request, and reports RTCP arrivals (consent and round-trip time) to the session.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RTCP_PSFB_FIR, RtcpPsfbPacket

from gateway.hub import Cursor, Ring

from .rtp import Prepared, PreparedFrames

#: A video viewer this far behind live (its sender slowed by a loaded loop) resumes at
#: the newest keyframe; the hub's floor for ``maxlag``.
MAXLAG_NS = 500_000_000

Start = Callable[[Ring], Literal["newest_cut"] | int]


class TrackCounters:
    """What one track has sent."""

    __slots__ = ("bytes", "frames", "keyframe_requests", "packets")

    def __init__(self) -> None:
        self.frames = 0
        self.packets = 0
        #: RTP payload bytes (headers and SRTP not counted).
        self.bytes = 0
        #: PLI and FIR received from the peer.
        self.keyframe_requests = 0


class SharedTrack(MediaStreamTrack):
    """A session's video or audio: the next frames of a shared ring, as RTP payloads."""

    def __init__(
        self,
        kind: Literal["video", "audio"],
        ring: Ring,
        prepared: PreparedFrames,
        *,
        start: Start,
        remote: str,
    ) -> None:
        """Read ``ring`` from where ``start`` says once the sender first asks."""
        super().__init__()
        self.kind = kind
        self.ring = ring
        self.prepared = prepared
        self.counters = TrackCounters()
        self._start = start
        self._remote = remote
        self.cursor: Cursor | None = None

    def _open(self) -> Cursor:
        # Opened on the sender's first pull, once DTLS is up: a keyframe asked for at
        # the offer would be gone (and a new one asked for) before the peer connects.
        cursor = self.ring.subscribe(
            self._start(self.ring),
            maxlag_ns=MAXLAG_NS,
            kind=f"webrtc {self.kind}",
            remote=self._remote,
        )
        self.cursor = cursor
        return cursor

    def poll(self) -> Prepared | None:
        """Return the next frame's payloads if one is pending; never wait."""
        cursor = self.cursor or self._open()
        # A frame is sent whole before the next is taken: nothing is unacked.
        cursor.check_frames(0, time.monotonic_ns())
        taken = cursor.take_frames(1)
        if not taken:
            return None
        prepared = self.prepared.get(taken[0].frame)
        counters = self.counters
        counters.frames += 1
        counters.packets += len(prepared.payloads)
        counters.bytes += prepared.size
        return prepared

    # aiortc's senders take anything ``pack`` takes; its signature says frames only.
    async def recv(self) -> Prepared:  # type: ignore[override]
        """Return the next frame's payloads; raise ``MediaStreamError`` once the ring ends."""
        cursor = self.cursor or self._open()
        while self.readyState == "live":
            prepared = self.poll()
            if prepared is not None:
                return prepared
            if not await cursor.wait():
                break
        raise MediaStreamError

    def request_keyframe(self) -> None:
        """Ask the shared encode for a keyframe (rate-limited there) for this viewer."""
        self.counters.keyframe_requests += 1
        if self.cursor is not None:
            self.cursor.request_keyframe()
        else:
            self.ring.request_keyframe()

    def stop(self) -> None:
        """Leave the ring and end the track."""
        if self.cursor is not None:
            self.cursor.close()
        super().stop()


class _PassThrough:
    """An aiortc encoder that packs what ``SharedTrack`` prepared: no encoding at all."""

    def pack(self, data: Prepared) -> tuple[list[bytes], int]:
        return data.payloads, data.timestamp

    def encode(self, frame: object, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise TypeError("a shared track sends pre-encoded packets only")


#: The name aiortc 1.x keeps a sender's encoder under (``RTCRtpSender.__encoder``).
_ENCODER_ATTR = "_RTCRtpSender__encoder"


def bind_sender(
    sender: Any,
    track: SharedTrack,
    on_rtcp: Callable[[Any, Any], Awaitable[None]],
) -> None:
    """Make ``sender`` pass ``track``'s payloads through and route its RTCP feedback.

    aiortc makes the sender's encoder on the first frame unless one is set, and answers
    PLI/FIR by flagging that encoder; both are replaced here (the encoder only packs:
    ``FastRtp`` replaces the loop that would call it where this aiortc allows).
    ``on_rtcp(sender, packet)`` runs after aiortc's own handling of each RTCP packet
    addressed to the sender (its round-trip time is then up to date).
    """
    setattr(sender, _ENCODER_ATTR, _PassThrough())
    sender._send_keyframe = track.request_keyframe
    handle = sender._handle_rtcp_packet

    async def handle_rtcp(packet: Any) -> None:
        await handle(packet)
        await on_rtcp(sender, packet)

    sender._handle_rtcp_packet = handle_rtcp


#: RFC 5104 §4.3.1.2: each FCI entry of a FIR is the SSRC asked for, a sequence
#: number and three reserved bytes.
_FIR_ENTRY = 8


def route_fir(transport: Any) -> None:
    """Make ``transport`` deliver a FIR to the senders its FCI entries name.

    aiortc's router hands payload-specific feedback to the sender whose SSRC is the
    header's media source; a FIR sets that field to 0 (RFC 5104 §4.3.1.2) and names
    the streams in its FCI instead, so without this a standard FIR reached no sender.
    """
    router = transport._rtp_router
    if getattr(router.route_rtcp, "routes_fir", False):
        return  # the bundle's transport, already done for another sender
    route = router.route_rtcp

    def route_rtcp(packet: Any) -> set[Any]:
        recipients: set[Any] = route(packet)
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_FIR:
            fci = packet.fci
            for offset in range(0, len(fci) - _FIR_ENTRY + 1, _FIR_ENTRY):
                sender = router.senders.get(int.from_bytes(fci[offset : offset + 4], "big"))
                if sender is not None:
                    recipients.add(sender)
        return recipients

    route_rtcp.routes_fir = True  # type: ignore[attr-defined]
    router.route_rtcp = route_rtcp
