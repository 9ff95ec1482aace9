"""The RTP send loop of a session's senders, lean enough to cost little per viewer.

aiortc's ``RTCRtpSender._run_rtp`` builds an ``RtpPacket`` object per packet, reads
the wall clock twice per packet through ``datetime``, and serializes header
extensions through a general map; per viewer that is most of the gateway's cost once
the encode and packetization are shared. ``FastRtp`` replaces that loop (and
retransmission, which reads its history) for a sender whose track is a
``SharedTrack``: a 12-byte RTP header and a precomputed RFC 8285 extension block
(``mid``, ``abs-send-time``) in front of each prepared payload, a history of sent
bytes for NACKs (RFC 4588 RTX when negotiated), and the counters aiortc's own RTCP
loop reads for its sender reports. What aiortc does with the packet after that
(SRTP, ICE) is untouched.

All access to aiortc's private sender state is here, named in ``_PRIVATE``;
``available(sender)`` says whether this aiortc still has it, and the session falls
back to aiortc's own loop if not.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from typing import Any

from aiortc.mediastreams import MediaStreamError

from .rtp import Prepared
from .tracks import SharedTrack

log = logging.getLogger("gateway.webrtc")

#: Sent packets kept for retransmission (aiortc keeps as many).
HISTORY = 128
#: Seconds between the NTP epoch (1900) and the Unix epoch (1970).
NTP_OFFSET = 2_208_988_800
_HEADER = struct.Struct("!BBHII")
_MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
_ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
#: aiortc 1.x's name-mangled sender attributes this module reads or writes.
_PRIVATE = (
    "_RTCRtpSender__rtp_started",
    "_RTCRtpSender__rtp_exited",
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__octet_count",
    "_RTCRtpSender__packet_count",
)


def available(sender: Any) -> bool:
    """Return True if ``sender`` has the private state ``FastRtp`` drives."""
    return all(hasattr(sender, name) for name in _PRIVATE) and hasattr(sender, "_run_rtp")


def _ntp(now: float) -> int:
    """Return the 64-bit NTP timestamp of Unix time ``now``."""
    return int((now + NTP_OFFSET) * 4_294_967_296)


class FastRtp:
    """The send loop and retransmissions of one sender of a ``SharedTrack``."""

    def __init__(self, sender: Any, track: SharedTrack) -> None:
        """Take over ``sender``'s RTP loop (before it starts) for ``track``."""
        self.sender = sender
        self.track = track
        self.history: dict[int, bytes] = {}
        self._seq = random.getrandbits(15)
        self._origin = random.getrandbits(32)
        self._rtx_seq = random.getrandbits(15)
        self._rtx_pt: int | None = None
        self._mid_id = 0
        self._abs_id = 0
        self._mid = b""
        self._pt = 0
        #: Frames go out from inside the ring's publish (False: from the task only).
        self.inline = True
        send = sender.send

        async def send_with(parameters: Any) -> None:
            self._configure(parameters)
            await send(parameters)

        sender.send = send_with
        sender._run_rtp = self.run
        sender._retransmit = self.retransmit

    def _configure(self, parameters: Any) -> None:
        """Note the payload types and extension ids aiortc negotiated."""
        for ext in parameters.headerExtensions:
            if ext.uri == _MID_URI:
                self._mid_id = ext.id
            elif ext.uri == _ABS_SEND_TIME_URI:
                self._abs_id = ext.id
        self._mid = (parameters.muxId or "").encode()[:16]
        primary = parameters.codecs[0].payloadType
        for codec in parameters.codecs:
            if codec.mimeType.lower().endswith("/rtx") and codec.parameters.get("apt") == primary:
                self._rtx_pt = codec.payloadType

    def _extensions(self, ntp: int) -> bytes:
        """Return the RFC 8285 one-byte-header extension block, or b"" if none."""
        elements = b""
        if self._mid_id and self._mid:
            elements += bytes([(self._mid_id << 4) | (len(self._mid) - 1)]) + self._mid
        if self._abs_id:
            elements += bytes([(self._abs_id << 4) | 2]) + ((ntp >> 14) & 0xFFFFFF).to_bytes(3)
        if not elements:
            return b""
        elements += b"\0" * (-len(elements) % 4)
        return struct.pack("!HH", 0xBEDE, len(elements) // 4) + elements

    async def run(self, codec: Any) -> None:
        """Send the track's frames until it or the sender ends (aiortc's ``_run_rtp``).

        The task sends a viewer's first frame, and any after a cut; in between, the
        frames published while it waits are sent from inside the ring's publish
        (``_deliver``), so a frame costs each viewer no task wake-up at all.
        """
        sender = self.sender
        sender._RTCRtpSender__rtp_started.set()
        self._pt = codec.payloadType
        try:
            while True:
                prepared = await self.track.recv()
                transport = sender.transport
                for data in self._packets(prepared):
                    await transport._send_rtp(data)
                cursor = self.track.cursor
                if self.inline and cursor is not None:
                    cursor.set_deliver(self._deliver)
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        finally:
            self.track.stop()
            sender._RTCRtpSender__rtp_exited.set()

    def _packets(self, prepared: Prepared) -> list[bytes]:
        """Return a frame's RTP packets, noting them for NACKs and sender reports."""
        sender = self.sender
        ntp = _ntp(time.time())
        ext = self._extensions(ntp)
        first = 0x90 if ext else 0x80
        timestamp = (self._origin + prepared.timestamp) & 0xFFFFFFFF
        payloads = prepared.payloads
        last = len(payloads) - 1
        pt, ssrc, history = self._pt, sender._ssrc, self.history
        out = []
        for i, payload in enumerate(payloads):
            seq = self._seq
            packet = bytearray(12 + len(ext) + len(payload))
            _HEADER.pack_into(
                packet, 0, first, pt | (0x80 if i == last else 0), seq, timestamp, ssrc
            )
            packet[12 : 12 + len(ext)] = ext
            packet[12 + len(ext) :] = payload
            data = bytes(packet)
            history[seq % HISTORY] = data
            self._seq = (seq + 1) & 0xFFFF
            out.append(data)
        sender._RTCRtpSender__ntp_timestamp = ntp
        sender._RTCRtpSender__rtp_timestamp = timestamp
        sender._RTCRtpSender__octet_count += prepared.size
        sender._RTCRtpSender__packet_count += last + 1
        return out

    def _deliver(self) -> bool:
        """Send what is pending now, inside ``Ring.publish``; False hands back to the task.

        aiortc's send path (SRTP, then ``sendto`` on a UDP socket) never waits, so its
        coroutine is run to its end here without a task. If it ever would wait (a
        transport that blocks), or raises (the connection closed), the frame is left to
        the task and this session stops sending inline.
        """
        track = self.track
        try:
            transport = self.sender.transport
            while (prepared := track.poll()) is not None:
                for data in self._packets(prepared):
                    step = transport._send_rtp(data)
                    try:
                        step.send(None)
                    except StopIteration:
                        continue
                    step.close()
                    self.inline = False
                    log.warning("webrtc: a send had to wait; this session sends from its task")
                    return False
        except Exception:  # ConnectionError and the like: the task ends the sender
            self.inline = False
            return False
        return True

    async def retransmit(self, sequence_number: int) -> None:
        """Send a packet a NACK reported lost again, as RTX when negotiated (RFC 4588)."""
        data = self.history.get(sequence_number % HISTORY)
        if data is None or int.from_bytes(data[2:4]) != sequence_number:
            return
        if self._rtx_pt is not None:
            header_len = 12 + (4 + 4 * int.from_bytes(data[14:16]) if data[0] & 0x10 else 0)
            rtx = bytearray(data[:header_len])
            rtx[1] = (data[1] & 0x80) | self._rtx_pt
            rtx[2:4] = self._rtx_seq.to_bytes(2)
            rtx[8:12] = self.sender._rtx_ssrc.to_bytes(4)
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            data = bytes(rtx) + data[2:4] + data[header_len:]
        await self.sender.transport._send_rtp(data)
