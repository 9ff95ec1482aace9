"""``gateway check-config``: every error of a configuration, then what is risky in a valid one.

Errors make the configuration unusable (``ConfigError``, from ``gateway.config``);
warnings are settings that are valid but probably not what the operator meant. Each
is one line, ``key: what is wrong``. ``gateway serve`` logs the warnings once at start.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.config import GatewayConfig, is_loopback, parse_config
from gateway.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ConfigReport:
    """What checking a configuration found."""

    #: The validated configuration; None when there are errors.
    config: GatewayConfig | None
    #: Every error, one line each: unknown keys first.
    errors: tuple[str, ...]
    #: Risky settings of a valid configuration, one line each.
    warnings: tuple[str, ...]


def check_config(text: str, env: Mapping[str, str] | None = None) -> ConfigReport:
    """Validate TOML ``text``; return every error, or the configuration and its warnings."""
    try:
        config = parse_config(text, env)
    except ConfigError as exc:
        return ConfigReport(None, exc.messages, ())
    return ConfigReport(config, (), config_warnings(config))


def config_warnings(config: GatewayConfig) -> tuple[str, ...]:
    """Return what is valid in ``config`` but probably a mistake, one line each."""
    return tuple(line for check in WARNINGS for line in check(config))


def _open_without_users(config: GatewayConfig) -> Iterator[str]:
    host = config.server.host
    if not config.users and not is_loopback(host):
        yield (
            f"server.listen: listening on {host} without [[users]]: only loopback clients "
            "are admitted; add [[users]] for the others"
        )


def _turn_without_credentials(config: GatewayConfig) -> Iterator[str]:
    for i, server in enumerate(config.webrtc.ice_servers):
        turn = any(url.startswith("turn") for url in server.urls)
        if turn and (server.username is None or server.credential is None):
            yield (
                f"webrtc.ice_servers[{i + 1}]: a TURN server without username and "
                "credential: TURN servers refuse unauthenticated clients"
            )


def _unused_ice_servers(config: GatewayConfig) -> Iterator[str]:
    # aiortc's peer connections take the first STUN and the first TURN URL only; the
    # rest still reach players as Link headers.
    seen: set[str] = set()
    for i, server in enumerate(config.webrtc.ice_servers):
        for url in server.urls:
            kind = "TURN" if url.startswith("turn") else "STUN"
            if kind in seen:
                yield (
                    f"webrtc.ice_servers[{i + 1}]: {url} is offered to players but not used "
                    f"by the gateway, which uses only the first {kind} server"
                )
            seen.add(kind)


def _loopback_candidates(config: GatewayConfig) -> Iterator[str]:
    host, addresses = config.server.host, config.webrtc.addresses
    if addresses and not is_loopback(host) and all(is_loopback(a) for a in addresses):
        yield (
            f"webrtc.addresses: only loopback addresses while listening on {host}: "
            "WebRTC players on other hosts cannot connect"
        )


def _announce(config: GatewayConfig) -> Iterator[str]:
    announce = config.webrtc.announce
    if announce is None:
        return
    address = ipaddress.ip_address(announce)
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        yield f"webrtc.announce: {announce} is not an address remote players can reach"
    elif not config.webrtc.addresses:
        yield (
            "webrtc.announce: without webrtc.addresses it is added to the candidates of "
            "every interface; list the address the NAT maps it to in addresses"
        )


def _camera_is_the_gateway(config: GatewayConfig) -> Iterator[str]:
    host, port = config.server.host, config.server.port
    try:
        anywhere = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        anywhere = False
    for camera in config.cameras:
        if camera.is_sim:
            continue
        parts = urlsplit(camera.source)
        source_port = parts.port or (443 if parts.scheme == "https" else 80)
        source_host = parts.hostname or ""
        same_host = source_host == host or (
            is_loopback(source_host) and (anywhere or is_loopback(host))
        )
        if source_port == port and same_host:
            yield (
                f"cameras[{camera.index}].source: is this gateway's own listen address: "
                "the gateway would ingest itself"
            )


def _username_without_password(config: GatewayConfig) -> Iterator[str]:
    for camera in config.cameras:
        if camera.username is not None and camera.password is None:
            yield (
                f"cameras[{camera.index}].password: not set, but username is: the camera "
                f"is asked as {camera.username!r} with an empty password"
            )


#: Every warning check, in report order.
WARNINGS: tuple[Callable[[GatewayConfig], Iterator[str]], ...] = (
    _open_without_users,
    _loopback_candidates,
    _announce,
    _turn_without_credentials,
    _unused_ice_servers,
    _camera_is_the_gateway,
    _username_without_password,
)
