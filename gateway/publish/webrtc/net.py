"""Choose the addresses aioice gathers host candidates on, loopback included.

aioice gathers on every interface address except 127.0.0.1 and ::1
(``aioice.ice.get_host_addresses``), and aiortc gives no way to choose. A server must
gather only on the addresses its configuration names, and tests must stay on loopback,
so this module wraps that function once, at import: inside ``gather_on(addresses)`` a
peer connection gathers on exactly those addresses; elsewhere aioice behaves as before.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import aioice.ice

from gateway.errors import LocalProtocolError

HostAddresses = Callable[[bool, bool], list[str]]

# A ContextVar, not a global: gathering runs in tasks aiortc creates inside
# setLocalDescription(), and each task copies the context it was created in.
_CHOSEN: ContextVar[tuple[str, ...] | None] = ContextVar("gateway_gather_on", default=None)
# Marks the wrapper, so importing this module twice (or reloading it) wraps only once.
_MARK = "__gateway_gather_on__"


@contextmanager
def gather_on(addresses: Sequence[str] | None) -> Iterator[None]:
    """Make ICE gathering in this context use exactly ``addresses`` (None: aioice's choice).

    :param addresses: IP literals (IPv4 or IPv6) to bind host candidates to, in order.
    """
    if addresses is not None:
        for address in addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise LocalProtocolError(f"gather_on: {address!r} is not an IP address") from None
    token = _CHOSEN.set(None if addresses is None else tuple(addresses))
    try:
        yield
    finally:
        _CHOSEN.reset(token)


def chosen_addresses() -> tuple[str, ...] | None:
    """Return the addresses ``gather_on`` chose in this context, or None outside it."""
    return _CHOSEN.get()


def _filtered(addresses: tuple[str, ...], use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """Keep the addresses of the IP versions the aioice connection allows."""
    allowed = {4} if use_ipv4 else set()
    if use_ipv6:
        allowed.add(6)
    return [a for a in addresses if ipaddress.ip_address(a).version in allowed]


def _install() -> None:
    """Wrap ``aioice.ice.get_host_addresses`` unless it is wrapped already."""
    original: HostAddresses = aioice.ice.get_host_addresses
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        chosen = _CHOSEN.get()
        if chosen is None:
            return original(use_ipv4, use_ipv6)
        return _filtered(chosen, use_ipv4, use_ipv6)

    setattr(get_host_addresses, _MARK, True)
    # Connection.gather_candidates() looks the function up in its module at call time.
    aioice.ice.get_host_addresses = get_host_addresses


_install()
