"""ICE for WHEP PATCH on a live aiortc peer connection: trickle and in-place ICE restart.

aiortc 1.16 takes trickled candidates but cannot restart ICE: a new remote ufrag in a
later offer is ignored, and aioice 0.13's ``Connection`` has no restart API. A WHEP
restart (draft-ietf-wish-whep, RFC 9725 §4.3.2) changes only ICE: new credentials on
both sides, the check list flushed, connectivity checks rerun, while media keeps flowing
on the previously selected pair until a new one is nominated, over the same DTLS
association (RFC 8445 §9: DTLS/SRTP are not renegotiated). This module does that in
place, and it is the only place that touches aiortc/aioice private attributes: each use
is listed in ``_INTERNALS`` and checked first, so a different aioice fails loudly with
``IceRestartUnsupported`` instead of half-restarting.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Collection
from dataclasses import dataclass

from aioice import Connection
from aioice.ice import CandidatePair
from aioice.mdns import is_mdns_hostname
from aioice.utils import random_string
from aiortc import RTCIceTransport, RTCPeerConnection
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp

from gateway.errors import GatewayError, LocalProtocolError, RemoteProtocolError
from gateway.publish.webrtc.sdpfrag import MediaFrag, SdpFrag

logger = logging.getLogger(__name__)
Log = logging.Logger | logging.LoggerAdapter[logging.Logger]

#: Default bound on the remote candidates one ICE transport holds (aioice has none, and
#: each one multiplies the check list): a browser trickles a handful.
MAX_REMOTE_CANDIDATES = 32
# Ta, the pacing of ordinary checks; aioice's connect() uses the same 20 ms.
_TA = 0.02
# RFC 8445 §5.3: a ufrag carries at least 24 bits and a password 128 bits of randomness;
# aioice's random_string draws from 62 characters (5.95 bits each).
_UFRAG_CHARS = 8
_PWD_CHARS = 24
# What the restart reads or rewrites. aioice.Connection: the credentials, the check list
# and its completion flag/queue, the pairs nominated and being nominated, the remote
# candidates and their end flag, and the closing flag. aiortc: the Connection
# behind an RTCIceTransport, and the gatherer's end-of-candidates flag that
# RTCIceTransport.addRemoteCandidate() consults before aioice does.
_INTERNALS = {
    "connection": (
        "_local_username",
        "_local_password",
        "_check_list",
        "_check_list_done",
        "_check_list_state",
        "_nominated",
        "_nominating",
        "_remote_candidates",
        "_remote_candidates_end",
        "_closing",
        "_remote_candidates_expected",
    ),
    "gatherer": ("_remote_candidates_end",),
}
_USABLE_TYPES = frozenset({"host", "srflx", "relay"})  # what aioice pairs with


class IceRestartUnsupported(GatewayError):
    """The installed aioice/aiortc lack the internals the in-place ICE restart relies on."""


@dataclass(frozen=True, slots=True)
class IceStatus:
    """A snapshot of the ICE agent behind a peer connection's first (bundle) transport."""

    #: Our current ice-ufrag.
    local_ufrag: str
    #: The peer's current ice-ufrag, or None before ICE started.
    remote_ufrag: str | None
    #: The selected pair of component 1 as ((local host, port), (remote host, port)).
    selected: tuple[tuple[str, int], tuple[str, int]] | None
    #: A restart is under way: the selected pair was nominated with the old credentials.
    restarting: bool


@dataclass(frozen=True, slots=True)
class _Transport:
    """One ICE transport of a peer connection and the mids bundled on it, first mid first."""

    #: The aiortc transport.
    ice: RTCIceTransport
    #: The mids using it.
    mids: tuple[str, ...]


def _transports(pc: RTCPeerConnection) -> list[_Transport]:
    """List the distinct ICE transports of the transceivers and the SCTP association."""
    mids: dict[RTCIceTransport, list[str]] = {}
    for transceiver in pc.getTransceivers():
        if transceiver.mid is not None and not transceiver.stopped:
            mids.setdefault(transceiver.sender.transport.transport, []).append(transceiver.mid)
    if pc.sctp is not None and pc.sctp.mid is not None:
        mids.setdefault(pc.sctp.transport.transport, []).append(pc.sctp.mid)
    return [_Transport(ice, tuple(names)) for ice, names in mids.items()]


def _connection(ice: RTCIceTransport, *, restart: bool = False) -> Connection:
    """Return the aioice Connection behind ``ice``, checking the internals used on it."""
    conn = getattr(ice, "_connection", None)
    if not isinstance(conn, Connection):
        raise IceRestartUnsupported("aiortc's RTCIceTransport has no aioice Connection")
    if restart:
        for owner, names in (
            (conn, _INTERNALS["connection"]),
            (ice.iceGatherer, _INTERNALS["gatherer"]),
        ):
            missing = [name for name in names if not hasattr(owner, name)]
            if missing:
                kind = type(owner).__name__
                raise IceRestartUnsupported(f"{kind} lacks {', '.join(missing)}")
    return conn


def remote_ufrag(pc: RTCPeerConnection) -> str | None:
    """Return the peer's current ice-ufrag (first transport), or None before ICE started."""
    transports = _transports(pc)
    return _connection(transports[0].ice).remote_username if transports else None


def ice_status(pc: RTCPeerConnection) -> IceStatus:
    """Describe the first transport's ICE agent: credentials, selected pair, restart."""
    transports = _transports(pc)
    if not transports:
        raise LocalProtocolError("ice_status: the peer connection has no ICE transport")
    conn = _connection(transports[0].ice, restart=True)
    pair = conn._nominated.get(1)
    return IceStatus(
        local_ufrag=conn.local_username,
        remote_ufrag=conn.remote_username,
        selected=None if pair is None else (pair.local_addr, pair.remote_addr),
        # A restart flushes the check list; a pair nominated since is on the new one.
        restarting=bool(conn._nominated) and not _renominated(conn),
    )


def local_fragment(pc: RTCPeerConnection) -> SdpFrag:
    """Describe our ICE side as a fragment: per transport its ufrag, pwd and candidates."""
    description = pc.localDescription
    if description is None:
        raise LocalProtocolError("local_fragment: no local description yet")
    lines = _media_lines(description.sdp)
    media = []
    for transport in _transports(pc):
        gatherer = transport.ice.iceGatherer
        params = gatherer.getLocalParameters()
        mid = transport.mids[0]
        media.append(
            MediaFrag(
                mid=mid,
                media=lines.get(mid, "audio 9 UDP/TLS/RTP/SAVPF 0"),
                ice_ufrag=params.usernameFragment,
                ice_pwd=params.password,
                candidates=tuple(candidate_to_sdp(c) for c in gatherer.getLocalCandidates()),
                end_of_candidates=gatherer.state == "completed",
            )
        )
    return SdpFrag(media=tuple(media))


def _media_lines(sdp: str) -> dict[str, str]:
    """Map each mid of an SDP to its m= line value, the port replaced by 9 (RFC 8840)."""
    lines: dict[str, str] = {}
    media: list[str] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            media = line[2:].split()
        elif line.startswith("a=mid:") and len(media) >= 3:
            lines[line[6:]] = " ".join([media[0], "9", *media[2:]])
    return lines


async def add_remote_candidates(
    pc: RTCPeerConnection,
    frag: SdpFrag,
    *,
    max_remote_candidates: int = MAX_REMOTE_CANDIDATES,
    log: Log = logger,
) -> int:
    """Hand a fragment's candidates (and end-of-candidates) to the ICE agents; return how many.

    Candidates are skipped (and logged) when their mid is unknown, when the fragment or
    the candidate names another ufrag than the peer's current one (a stale generation),
    when aioice cannot use them (TCP, prflx, a non-mDNS host name), when the transport
    already holds ``max_remote_candidates``, or after end-of-candidates. mDNS ``.local``
    candidates are resolved by aioice, concurrently, up to its 1 s timeout each; an
    unresolvable one is dropped by aioice and still counts as handed over.
    """
    by_mid = {mid: t for t in _transports(pc) for mid in t.mids}
    plan: dict[RTCIceTransport, list[str]] = {}
    ends: set[RTCIceTransport] = (
        {t.ice for t in by_mid.values()} if frag.end_of_candidates else set()
    )
    skipped = 0
    for section in frag.media:
        transport = by_mid.get(section.mid)
        conn = None if transport is None else _connection(transport.ice)
        ufrag = frag.credentials(section)[0]
        if transport is None or conn is None or ufrag not in (None, conn.remote_username):
            skipped += len(section.candidates)
            continue
        wanted = plan.setdefault(transport.ice, [])
        for value in section.candidates:
            if _usable(value, conn.remote_username) and value not in wanted:
                wanted.append(value)
            else:
                skipped += 1
        if frag.ended(section):
            ends.add(transport.ice)
    handed = 0
    for ice, values in plan.items():
        conn = _connection(ice)
        # After end-of-candidates aiortc drops candidates silently: do not count them.
        ended = getattr(conn, "_remote_candidates_end", False)
        room = 0 if ended else max_remote_candidates
        room = max(0, room - len(conn.remote_candidates))
        skipped += max(0, len(values) - room)
        results = await asyncio.gather(*(_add(ice, value, log) for value in values[:room]))
        handed += sum(results)
    for ice in ends:
        await ice.addRemoteCandidate(None)
    if skipped:
        log.info("ICE: %d trickled candidates skipped, %d handed over", skipped, handed)
    return handed


def _usable(value: str, current_ufrag: str | None) -> bool:
    """Tell whether aioice can pair with a (validated) candidate of the current generation."""
    bits = value.split()
    extensions = dict(zip(bits[8::2], bits[9::2], strict=False))
    if extensions.get("ufrag", current_ufrag) != current_ufrag:
        return False  # the candidate of an earlier generation (Chromium adds "ufrag")
    return (
        bits[2].lower() == "udp"
        and bits[7] in _USABLE_TYPES
        and (_is_ip(bits[4]) or is_mdns_hostname(bits[4]))
    )


def _is_ip(host: str) -> bool:
    """Tell whether ``host`` is an IP literal (aioice drops other non-mDNS names)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _add(ice: RTCIceTransport, value: str, log: Log) -> bool:
    """Hand one candidate to aiortc; report failures of mDNS setup instead of raising."""
    try:
        await ice.addRemoteCandidate(candidate_from_sdp(value))
    except (OSError, ValueError) as exc:
        # OSError: aioice could not open its mDNS socket; ValueError: end-of-candidates
        # raced in while an earlier candidate was being resolved.
        log.info("ICE: remote candidate not added: %s", exc)
        return False
    return True


async def restart_ice(pc: RTCPeerConnection, frag: SdpFrag, *, log: Log = logger) -> SdpFrag:
    """Apply a restart the peer started with ``frag``; return our new fragment for the 200.

    Every transport gets new local credentials, the peer's from ``frag``, a flushed check
    list and remote candidates, and rerun checks; the old selected pair carries media until
    the peer nominates a new one. Local candidates (and sockets) are kept.

    :raises RemoteProtocolError: the fragment lacks a new ufrag or pwd for a transport, or
        ICE has not started yet.
    :raises IceRestartUnsupported: aioice/aiortc lack the internals this relies on.
    """
    _apply_restart(pc, frag, renew_local=True, log=log)
    await add_remote_candidates(pc, frag, log=log)
    return local_fragment(pc)


def begin_ice_restart(pc: RTCPeerConnection, *, log: Log = logger) -> SdpFrag:
    """Start a restart from our side (a WHEP client): new local credentials; return the fragment.

    Send the fragment to the peer and pass its answer to ``finish_ice_restart``.
    """
    for transport in _transports(pc):
        _renew_local(_connection(transport.ice, restart=True), log)
    return local_fragment(pc)


async def finish_ice_restart(pc: RTCPeerConnection, frag: SdpFrag, *, log: Log = logger) -> int:
    """Apply the peer's answer to ``begin_ice_restart``; return the candidates handed over."""
    _apply_restart(pc, frag, renew_local=False, log=log)
    return await add_remote_candidates(pc, frag, log=log)


def _apply_restart(pc: RTCPeerConnection, frag: SdpFrag, *, renew_local: bool, log: Log) -> None:
    """Check every transport can restart with ``frag``, then restart them all, or none."""
    plans = []
    for transport in _transports(pc):
        conn = _connection(transport.ice, restart=True)
        if transport.ice.state in ("failed", "closed"):
            raise LocalProtocolError(f"ICE restart on a {transport.ice.state} transport")
        if conn.remote_username is None:
            raise RemoteProtocolError("ICE restart before the ICE checks began")
        ufrag, pwd = frag.credentials(_section(frag, transport.mids))
        if ufrag is None or pwd is None:
            raise RemoteProtocolError("ICE restart without ice-ufrag and ice-pwd")
        if ufrag == conn.remote_username:
            raise RemoteProtocolError("ICE restart without a new ice-ufrag")
        plans.append((transport, conn, ufrag, pwd))
    if not plans:
        raise LocalProtocolError("ICE restart on a peer connection without ICE transports")
    for transport, conn, ufrag, pwd in plans:
        log.info("ICE restart: remote ufrag %s -> %s", conn.remote_username, ufrag)
        _restart(transport.ice, conn, ufrag, pwd)
        if renew_local:
            _renew_local(conn, log)


def _renew_local(conn: Connection, log: Log) -> None:
    """Give the agent new local credentials (aioice only sets them at construction)."""
    old = conn.local_username
    conn._local_username = random_string(_UFRAG_CHARS)
    conn._local_password = random_string(_PWD_CHARS)
    log.info("ICE restart: local ufrag %s -> %s", old, conn.local_username)


def _section(frag: SdpFrag, mids: Collection[str]) -> MediaFrag | None:
    """Return the fragment's first media description for one of ``mids``, if any."""
    return next((m for m in frag.media if m.mid in mids), None)


def _restart(ice: RTCIceTransport, conn: Connection, ufrag: str, pwd: str) -> None:
    """Flush the agent's check list and remote side in place, and pace new checks (§9)."""
    for pair in conn._check_list:
        if pair.task is not None:
            pair.task.cancel()  # a check of the old generation, with the old password
    # A new list object, not clear(): the pacing task of an earlier restart compares
    # identities and stops. _nominated keeps the old pair: sendto() and recv() need it
    # until the peer nominates a pair of the new generation (RFC 8445 §9).
    checks: list[CandidatePair] = []
    conn._check_list = checks
    conn._remote_candidates = []
    conn._remote_candidates_end = False
    ice.iceGatherer._remote_candidates_end = False
    conn._nominating.clear()
    # Whatever connect() left unread; a connect() still waiting reads the next result.
    while not conn._check_list_state.empty():
        conn._check_list_state.get_nowait()
    conn._check_list_done = False
    conn.remote_username = ufrag
    conn.remote_password = pwd
    # connect() paced the first checks and has returned; this task paces the new ones. It
    # ends by itself: once a pair of the new list is nominated for every component, when
    # no check is left to start after end-of-candidates, on close(), or when a later
    # restart replaces the list. While it sleeps, the loop's timer handle keeps it alive.
    task = asyncio.create_task(_pace_checks(conn, checks))
    task.add_done_callback(_pacing_done)


async def _pace_checks(conn: Connection, checks: list[CandidatePair]) -> None:
    """Start the restarted list's checks one per Ta (RFC 8445 §6.1.4.2), as connect() does.

    Not Connection._check_periodic(): it stops once the check list is marked done, and
    aioice marks it done as soon as every component has a nominated pair, which the
    old generation's pair still is (any success or end-of-candidates would stop it).
    """
    # A timer, not a wait on a condition: each tick starts at most one check.
    while conn._check_list is checks and not conn._closing and not _renominated(conn):
        pair = _next_check(checks)
        if pair is not None:
            conn.check_start_task(pair)
        elif not conn._remote_candidates_expected():
            return
        await asyncio.sleep(_TA)


def _renominated(conn: Connection) -> bool:
    """Tell whether every component's selected pair is one of the current check list."""
    return bool(conn._nominated) and all(p in conn._check_list for p in conn._nominated.values())


def _next_check(checks: list[CandidatePair]) -> CandidatePair | None:
    """Return the highest-priority Waiting pair, else Frozen pair (the list is sorted)."""
    for state in (CandidatePair.State.WAITING, CandidatePair.State.FROZEN):
        for pair in checks:
            if pair.state == state and pair.task is None:
                return pair
    return None


def _pacing_done(task: asyncio.Task[None]) -> None:
    """Log a pacing task that failed (it is never awaited)."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("ICE restart checks failed", exc_info=task.exception())
