"""FastRtp: the RTP headers, extensions, sender-report counters and RTX it produces."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import (
    RTCRtcpParameters,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from gateway.hub import Ring
from gateway.hub.ring import has_cut
from gateway.media import CutPoint, Frame
from gateway.publish.webrtc.rtp import Prepared, PreparedFrames
from gateway.publish.webrtc.sender import FastRtp, available
from gateway.publish.webrtc.tracks import SharedTrack


@dataclass
class FakeTransport:
    sent: list[bytes] = field(default_factory=list)

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)


class FakeTrack:
    """Hands out the given frames, then waits until stopped."""

    def __init__(self, frames: list[Prepared]) -> None:
        self.frames = list(frames)
        #: No hub cursor: FastRtp sends every frame from its task.
        self.cursor = None
        self.stopped = False
        self.done = asyncio.Event()

    async def recv(self) -> Prepared:
        if self.frames:
            return self.frames.pop(0)
        self.done.set()
        await asyncio.Event().wait()
        raise AssertionError

    def stop(self) -> None:
        self.stopped = True


class FakeSender:
    """The attributes of aiortc's RTCRtpSender that FastRtp drives."""

    def __init__(self) -> None:
        self._ssrc = 0x11223344
        self._rtx_ssrc = 0x55667788
        self.transport = FakeTransport()
        self._RTCRtpSender__rtp_started = asyncio.Event()
        self._RTCRtpSender__rtp_exited = asyncio.Event()
        self._RTCRtpSender__ntp_timestamp = 0
        self._RTCRtpSender__rtp_timestamp = 0
        self._RTCRtpSender__octet_count = 0
        self._RTCRtpSender__packet_count = 0
        self.params: Any = None

    async def send(self, parameters: Any) -> None:
        self.params = parameters

    async def _run_rtp(self, codec: Any) -> None:
        raise AssertionError("replaced")

    async def _retransmit(self, seq: int) -> None:
        raise AssertionError("replaced")


def _params() -> RTCRtpSendParameters:
    h264 = RTCRtpCodecParameters(
        mimeType="video/H264",
        clockRate=90000,
        payloadType=102,
        parameters={"packetization-mode": "1", "profile-level-id": "42e01f"},
    )
    rtx = RTCRtpCodecParameters(
        mimeType="video/rtx", clockRate=90000, payloadType=103, parameters={"apt": 102}
    )
    return RTCRtpSendParameters(
        codecs=[h264, rtx],
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
            RTCRtpHeaderExtensionParameters(
                id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
            ),
        ],
        muxId="0",
        rtcp=RTCRtcpParameters(cname="x", mux=True),
    )


async def _run(frames: list[Prepared]) -> tuple[FakeSender, FastRtp, FakeTrack]:
    sender = FakeSender()
    track = FakeTrack(frames)
    fast = FastRtp(sender, track)  # type: ignore[arg-type]
    params = _params()
    await sender.send(params)
    task = asyncio.ensure_future(sender._run_rtp(params.codecs[0]))
    await track.done.wait()
    task.cancel()
    await sender._RTCRtpSender__rtp_exited.wait()
    return sender, fast, track


async def test_packets_parse_as_rtp_with_marker_extensions_and_counters() -> None:
    frames = [
        Prepared([b"a" * 100, b"b" * 50], timestamp=3000, keyframe=True, size=150),
        Prepared([b"c" * 10], timestamp=6000, keyframe=False, size=10),
    ]
    sender, fast, track = await _run(frames)
    assert track.stopped
    extensions = HeaderExtensionsMap()
    extensions.configure(_params())
    packets = [RtpPacket.parse(d, extensions) for d in sender.transport.sent]
    assert [p.payload for p in packets] == [b"a" * 100, b"b" * 50, b"c" * 10]
    assert [p.marker for p in packets] == [0, 1, 1]
    assert {p.payload_type for p in packets} == {102}
    assert {p.ssrc for p in packets} == {0x11223344}
    seqs = [p.sequence_number for p in packets]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(3)]
    assert packets[0].timestamp == packets[1].timestamp
    assert (packets[2].timestamp - packets[0].timestamp) & 0xFFFFFFFF == 3000
    assert {p.extensions.mid for p in packets} == {"0"}
    assert all(p.extensions.abs_send_time is not None for p in packets)
    assert sender._RTCRtpSender__packet_count == 3
    assert sender._RTCRtpSender__octet_count == 160
    assert sender._RTCRtpSender__rtp_timestamp == packets[2].timestamp
    assert available(sender)
    del fast


async def test_retransmission_is_rtx_with_the_original_sequence_number() -> None:
    sender, fast, _ = await _run([Prepared([b"x" * 40], timestamp=0, keyframe=True, size=40)])
    original = RtpPacket.parse(sender.transport.sent[0])
    await sender._retransmit(original.sequence_number)
    await sender._retransmit((original.sequence_number + 7) & 0xFFFF)  # never sent: ignored
    assert len(sender.transport.sent) == 2
    rtx = RtpPacket.parse(sender.transport.sent[1])
    assert rtx.payload_type == 103
    assert rtx.ssrc == 0x55667788
    assert rtx.timestamp == original.timestamp
    assert struct.unpack("!H", rtx.payload[:2])[0] == original.sequence_number
    assert rtx.payload[2:] == original.payload
    del fast


async def test_aiortc_senders_have_what_fast_rtp_drives() -> None:
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("video", direction="sendonly")
        assert available(transceiver.sender)
    finally:
        await pc.close()


class SyncTransport:
    """aiortc's send path as it is for UDP: a coroutine that never waits."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)


async def test_frames_after_the_first_go_out_inside_the_rings_publish() -> None:
    ring = Ring("h264", is_cut=has_cut)
    sender = FakeSender()
    sender.transport = SyncTransport()  # type: ignore[assignment]
    track = SharedTrack(
        "audio", ring, PreparedFrames(clock_rate=48000, video=False), start=lambda r: 0, remote=""
    )
    fast = FastRtp(sender, track)
    params = _params()
    await sender.send(params)
    task = asyncio.ensure_future(sender._run_rtp(params.codecs[0]))

    def frame(i: int) -> Frame:
        return Frame(
            payload=bytes([i]) * 10,
            content_type="audio/opus",
            seq=i,
            pts=i * 2880,
            time_base=Fraction(1, 48000),
            received_ns=i,
            cut=CutPoint(),
        )

    ring.publish(frame(0))
    for _ in range(20):  # the task takes the first frame (a join) and parks
        await asyncio.sleep(0)
    assert len(sender.transport.sent) == 1
    for i in range(1, 6):
        ring.publish(frame(i))
        # Sent before publish returned: no task had to run.
        assert len(sender.transport.sent) == i + 1
    assert fast.inline
    assert [RtpPacket.parse(d).payload[0] for d in sender.transport.sent] == list(range(6))
    task.cancel()
    await sender._RTCRtpSender__rtp_exited.wait()
    assert track.cursor is not None
    assert track.cursor.closed
