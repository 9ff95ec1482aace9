"""Exception tree: every error says whose fault it is (after h11's split)."""

from __future__ import annotations


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""


class RemoteProtocolError(GatewayError):
    """The peer (camera or client) sent data that breaks the protocol or a limit."""


class LocalProtocolError(GatewayError):
    """Our own caller misused an API (a bug on this side)."""


class CapacityError(GatewayError):
    """The gateway is at one of its configured bounds (clients, renditions): answer 503."""


class ConfigError(GatewayError):
    """The configuration is invalid; each message names the offending key."""

    def __init__(self, *messages: str) -> None:
        super().__init__("\n".join(messages))
        #: Every problem found, one line each (``key: what is wrong``).
        self.messages = messages


class AuthError(RemoteProtocolError):
    """The camera refused our credentials (401/403)."""


class UpstreamError(RemoteProtocolError):
    """The camera answered with something we cannot ingest (503, HTML page, wrong type)."""
