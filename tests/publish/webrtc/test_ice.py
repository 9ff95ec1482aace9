"""gateway.publish.webrtc.ice on two live aiortc peers over 127.0.0.1: trickle and ICE restart."""

from __future__ import annotations

import dataclasses
import time

import aioice.ice
import aioice.stun
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.publish.webrtc.ice import (
    IceRestartUnsupported,
    add_remote_candidates,
    begin_ice_restart,
    finish_ice_restart,
    ice_status,
    local_fragment,
    remote_ufrag,
    restart_ice,
)
from gateway.publish.webrtc.sdpfrag import MediaFrag, SdpFrag, is_ice_restart, parse_sdpfrag
from tests.publish.webrtc.peers import Peers, connect, connected, negotiated, until, wire

PWD = "bP+XJMM09aR8AiX1jdukzR6Y"


def candidates_of(pc: RTCPeerConnection) -> list[tuple[str, int, str]]:
    """Return the (host, port, type) of the remote candidates the ICE agent knows."""
    ice = pc.getTransceivers()[0].sender.transport.transport
    return [(c.ip, c.port, c.type) for c in ice.getRemoteCandidates()]


def trickle(ufrag: str | None, *candidates: str, mid: str = "0", end: bool = False) -> SdpFrag:
    """Return a trickle fragment for one mid."""
    section = MediaFrag(mid, "audio 9 RTP/AVP 0", ufrag, None, candidates, end)
    return wire(SdpFrag(media=(section,)))


def host(port: int, extra: str = "") -> str:
    """Return a host candidate on loopback (checks sent to it stay on this machine)."""
    return f"{port} 1 udp 2130706431 127.0.0.1 {port} typ host{extra}"


async def restart(peers: Peers) -> tuple[SdpFrag, SdpFrag]:
    """Run a client-initiated ICE restart through sdpfrag text; return (offer, answer)."""
    offer = begin_ice_restart(peers.client)
    assert is_ice_restart(wire(offer), remote_ufrag(peers.server))
    answer = await restart_ice(peers.server, wire(offer))
    await finish_ice_restart(peers.client, wire(answer))
    return offer, answer


def renominated(peers: Peers) -> bool:
    """Tell whether both sides nominated a pair with their current credentials."""
    return not ice_status(peers.server).restarting and not ice_status(peers.client).restarting


async def test_offer_without_candidates_connects_through_trickle() -> None:
    async with negotiated() as peers:
        client_ip, client_port = local_fragment(peers.client).media[0].candidates[0].split()[4:6]
        assert await connect(peers) == 1
        # The server knows the client only from the fragment (a host candidate, not a
        # peer-reflexive one) and the client knows the server only from its checks.
        assert candidates_of(peers.server) == [(client_ip, int(client_port), "host")]
        assert [c[2] for c in candidates_of(peers.client)] == ["prflx"]
        status = ice_status(peers.server)
        assert status.selected is not None
        assert status.selected[1] == (client_ip, int(client_port))
        assert not status.restarting


async def test_trickle_skips_what_ice_cannot_use() -> None:
    async with negotiated() as peers:
        ufrag = remote_ufrag(peers.server)
        assert ufrag is not None
        assert await add_remote_candidates(peers.server, trickle(ufrag, host(9), mid="7")) == 0
        assert await add_remote_candidates(peers.server, trickle("zzzz", host(9))) == 0
        ignored = (
            host(9).replace("udp", "tcp") + " tcptype active",
            host(9).replace("host", "prflx"),
            host(9).replace("127.0.0.1", "example.com"),
            host(9, f" generation 0 ufrag {ufrag}x"),  # Chromium's ufrag of another generation
        )
        assert await add_remote_candidates(peers.server, trickle(ufrag, *ignored)) == 0
        same = trickle(None, host(9), host(9), host(10, f" ufrag {ufrag}"))
        assert await add_remote_candidates(peers.server, same) == 2
        bounded = trickle(ufrag, host(11), host(12))
        assert await add_remote_candidates(peers.server, bounded, max_remote_candidates=3) == 1
        assert await add_remote_candidates(peers.server, trickle(ufrag, end=True)) == 0
        assert await add_remote_candidates(peers.server, trickle(ufrag, host(13))) == 0
        assert [c[1] for c in candidates_of(peers.server)] == [9, 10, 11]


class FakeMdns:
    """Stands in for aioice's mDNS protocol: no multicast leaves the machine in tests."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.asked: list[str] = []

    async def resolve(self, hostname: str) -> str | None:
        self.asked.append(hostname)
        return self.address


def use_mdns(monkeypatch: pytest.MonkeyPatch, address: str | None) -> FakeMdns:
    fake = FakeMdns(address)

    async def get(subscriber: object) -> FakeMdns:
        return fake

    async def unref(subscriber: object) -> None:
        return None

    monkeypatch.setattr(aioice.ice, "get_or_create_mdns_protocol", get)
    monkeypatch.setattr(aioice.ice, "unref_mdns_protocol", unref)
    return fake


async def test_mdns_candidate_is_resolved_and_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use_mdns(monkeypatch, "127.0.0.1")
    name = "5c5e1d8b-3ec5-4c8e-8e7a-1b0e3b1d2f4a.local"
    async with negotiated() as peers:
        frag = local_fragment(peers.client)
        section = frag.media[0]
        hidden = tuple(c.replace(" 127.0.0.1 ", f" {name} ") for c in section.candidates)
        frag = dataclasses.replace(frag, media=(dataclasses.replace(section, candidates=hidden),))
        assert await add_remote_candidates(peers.server, wire(frag)) == 1
        await until(lambda: peers.server.connectionState == "connected", "server connected")
        assert fake.asked == [name]
        assert [c[0] for c in candidates_of(peers.server)] == [name]


async def test_unresolvable_mdns_candidate_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    use_mdns(monkeypatch, None)
    name = "0e2d6b9a-1111-4c8e-8e7a-1b0e3b1d2f4a.local"
    async with negotiated() as peers:
        ufrag = remote_ufrag(peers.server)
        frag = trickle(ufrag, host(9).replace("127.0.0.1", name))
        assert await add_remote_candidates(peers.server, frag) == 1
        assert candidates_of(peers.server) == []

        async def broken(subscriber: object) -> FakeMdns:
            raise OSError("no multicast here")

        monkeypatch.setattr(aioice.ice, "get_or_create_mdns_protocol", broken)
        assert await add_remote_candidates(peers.server, frag) == 0


async def test_restart_keeps_media_flowing_over_the_same_dtls() -> None:
    async with connected() as peers:
        before = ice_status(peers.server), ice_status(peers.client)
        started = time.monotonic()
        offer, answer = await restart(peers)
        await until(lambda: renominated(peers), "new pairs nominated on both sides")
        # Well under aioice's consent interval (4 to 6 s): the rerun checks did it.
        assert time.monotonic() - started < 3.0
        server, client = ice_status(peers.server), ice_status(peers.client)
        assert (server.local_ufrag, server.remote_ufrag) == (
            answer.credentials()[0],
            offer.credentials()[0],
        )
        assert (client.local_ufrag, client.remote_ufrag) == (
            server.remote_ufrag,
            server.local_ufrag,
        )
        assert server.local_ufrag != before[0].local_ufrag
        assert client.local_ufrag != before[1].local_ufrag
        # Same sockets, so the same 5-tuple, now checked with the new credentials.
        assert server.selected == before[0].selected
        assert answer.media[0].candidates == local_fragment(peers.server).media[0].candidates
        assert answer.media[0].end_of_candidates
        await peers.frames_after(50, "audio after the restart")
        assert peers.dtls_changes == []
        assert peers.dtls(peers.server).state == peers.dtls(peers.client).state == "connected"
        assert peers.client.connectionState == peers.server.connectionState == "connected"


def fast_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check consent every ~50 ms, timing out after 100 ms: six failures take ~1 s, not 30 s.

    A 401 to a consent check is not signed, so aioice ignores it and waits for the timeout.
    """
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.05)
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 0.1)


async def test_consent_continues_with_the_new_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast_consent(monkeypatch)
    async with connected() as peers:
        await restart(peers)
        await until(lambda: not ice_status(peers.client).restarting, "client renominated")
        await peers.frames_after(100, "two seconds of audio after the restart")
        assert peers.client.connectionState == peers.server.connectionState == "connected"


async def test_consent_fails_when_only_the_server_restarted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The counter-test of the one above: it shows consent really checks the credentials.
    fast_consent(monkeypatch)
    async with connected() as peers:
        await restart_ice(peers.server, wire(begin_ice_restart(peers.client)))
        await until(
            lambda: peers.client.connectionState in ("failed", "closed"),
            "client consent expired",
        )


async def test_back_to_back_restarts_end_with_the_last_credentials() -> None:
    async with connected() as peers:
        await restart(peers)
        offer, answer = await restart(peers)
        await until(lambda: renominated(peers), "new pairs after the second restart")
        assert ice_status(peers.server).remote_ufrag == offer.credentials()[0]
        assert ice_status(peers.client).remote_ufrag == answer.credentials()[0]
        await peers.frames_after(25, "audio after two restarts")
        assert peers.dtls_changes == []


async def test_stale_fragment_is_not_a_restart() -> None:
    async with connected() as peers:
        old = remote_ufrag(peers.server)
        assert old is not None
        current = trickle(old, host(9))
        assert not is_ice_restart(current, old)
        await restart(peers)
        new = remote_ufrag(peers.server)
        assert new is not None
        assert new != old
        known = candidates_of(peers.server)
        stale = trickle(old, host(9))
        assert not is_ice_restart(stale, new, retired={old})
        assert is_ice_restart(stale, new)  # without the history it looks like a new restart
        assert await add_remote_candidates(peers.server, stale) == 0
        assert candidates_of(peers.server) == known


async def test_restart_refusals_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    async with connected() as peers:
        before = ice_status(peers.server)
        ufrag = remote_ufrag(peers.server)
        without_pwd = parse_sdpfrag("a=ice-ufrag:ysXw\r\n")
        with pytest.raises(RemoteProtocolError, match="without ice-ufrag and ice-pwd"):
            await restart_ice(peers.server, without_pwd)
        same = parse_sdpfrag(f"a=ice-ufrag:{ufrag}\r\na=ice-pwd:{PWD}\r\n")
        with pytest.raises(RemoteProtocolError, match="without a new ice-ufrag"):
            await restart_ice(peers.server, same)
        conn = peers.server.getTransceivers()[0].sender.transport.transport._connection
        monkeypatch.delattr(conn, "_nominating")
        fresh = parse_sdpfrag(f"a=ice-ufrag:ysXw\r\na=ice-pwd:{PWD}\r\n")
        with pytest.raises(IceRestartUnsupported, match="Connection lacks _nominating"):
            await restart_ice(peers.server, fresh)
        monkeypatch.undo()
        assert ice_status(peers.server) == before
        await peers.frames_after(5, "audio after the refusals")


async def test_restart_before_ice_started_or_after_close() -> None:
    server = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    fresh = parse_sdpfrag(f"a=ice-ufrag:ysXw\r\na=ice-pwd:{PWD}\r\n")
    try:
        async with negotiated() as peers:
            offer = peers.client.localDescription.sdp
        await server.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        with pytest.raises(RemoteProtocolError, match="before the ICE checks began"):
            await restart_ice(server, fresh)
    finally:
        await server.close()
    with pytest.raises(LocalProtocolError, match="without ICE transports"):
        await restart_ice(server, fresh)


async def test_local_fragment_matches_the_answer() -> None:
    async with negotiated() as peers:
        frag = local_fragment(peers.server)
        assert frag.ice_ufrag is None
        (section,) = frag.media
        assert section.mid == "0"
        assert section.media.startswith("audio 9 UDP/TLS/RTP/SAVPF ")
        assert section.end_of_candidates
        sdp = peers.server.localDescription.sdp
        assert f"a=ice-ufrag:{section.ice_ufrag}" in sdp
        assert f"a=ice-pwd:{section.ice_pwd}" in sdp
        assert all(f"a=candidate:{c}" in sdp for c in section.candidates)
        assert [c.split()[4] for c in section.candidates] == ["127.0.0.1"]
