"""Which local addresses a peer connection gathers host candidates on.

aioice gathers on every interface address but ``127.0.0.1`` and has no per-connection
choice. A gateway behind one public interface, in a container, or serving only this
host needs one: ``[webrtc] addresses``. aioice looks the addresses up through its
module-level ``get_host_addresses`` while a connection gathers, in the task that
awaits ``setLocalDescription``; this module wraps that function once so that inside
``gather_on(addresses)`` it answers with exactly those addresses, and as before
everywhere else (a ``ContextVar``, so concurrent sessions never see each other's).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar

import aioice.ice

_ADDRESSES: ContextVar[tuple[str, ...] | None] = ContextVar("gather_addresses", default=None)

HostAddresses = Callable[[bool, bool], list[str]]


def _wrap(original: HostAddresses) -> HostAddresses:
    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        chosen = _ADDRESSES.get()
        if chosen is None:
            return original(use_ipv4, use_ipv6)
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    get_host_addresses.wrapped = original  # type: ignore[attr-defined]
    return get_host_addresses


if not hasattr(aioice.ice.get_host_addresses, "wrapped"):
    aioice.ice.get_host_addresses = _wrap(aioice.ice.get_host_addresses)  # type: ignore[assignment]


@contextlib.contextmanager
def gather_on(addresses: Sequence[str] | None) -> Iterator[None]:
    """Make peer connections gathering inside the block use ``addresses`` (None: all)."""
    token = _ADDRESSES.set(None if not addresses else tuple(addresses))
    try:
        yield
    finally:
        _ADDRESSES.reset(token)
