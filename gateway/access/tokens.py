"""Signed, expiring viewing tokens for players that cannot send Basic auth.

A token is ``gwt1.<payload>.<signature>``: the payload is base64url (RFC 4648 §5, no
padding) of compact JSON ``{"c": [camera names], "e": expiry (Unix seconds), "s":
"view", "u": issuer}`` (``u`` optional), and the signature is base64url of
HMAC-SHA256 (RFC 2104) over the ASCII text ``gwt1.<payload>``. Signing the text, not
the decoded JSON, leaves no canonical-form question; comparing the signature as text
(constant time) leaves no malleable padding bits. The ``gwt1.`` prefix versions the
format and lets log redaction find a token anywhere.

Sans-IO: no clock (``now`` is an argument), no aiohttp.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.config import MAX_TOKEN_TTL, GatewayConfig
from gateway.errors import ConfigError, LocalProtocolError, RemoteProtocolError

PREFIX = "gwt1."
#: The longest token looked at; anything longer is refused before any decoding.
MAX_TOKEN_CHARS = 2048
#: Cameras one token may name.
MAX_CAMERAS = 64
#: Every character a well-formed token has: the prefix, base64url and the separator.
_SHAPE = re.compile(r"gwt1\.[A-Za-z0-9_-]{1,2000}\.[A-Za-z0-9_-]{43}")
_PAYLOAD_KEYS = frozenset({"c", "e", "s", "u"})


class Scope(enum.Enum):
    """What a token lets its bearer do."""

    #: Watch the token's cameras: media outputs, the page, the viewer's ``/api``.
    VIEW = "view"


class InvalidToken(RemoteProtocolError):
    """The token is malformed, signed with another key, or tampered with."""


class ExpiredToken(InvalidToken):
    """The token was valid and has expired."""


@dataclass(frozen=True, slots=True)
class Token:
    """What a verified token grants."""

    #: Names of the cameras it is for.
    cameras: tuple[str, ...]
    #: Unix seconds after which it is refused.
    expires: int
    scope: Scope = Scope.VIEW
    #: The user who issued it (the token endpoint), None from ``gateway token``.
    issuer: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Issue and verify tokens with one HMAC key."""

    def __init__(self, key: bytes) -> None:
        """Sign with ``key`` (the configuration's ``[tokens] key``, UTF-8)."""
        if not key:
            raise LocalProtocolError("a token key must not be empty")
        self._key = key

    def _signature(self, signed: str) -> str:
        return _b64(hmac.new(self._key, signed.encode("ascii"), hashlib.sha256).digest())

    def issue(
        self, cameras: Sequence[str], *, now: float, ttl: int, issuer: str | None = None
    ) -> str:
        """Return a token for ``cameras`` that expires ``ttl`` seconds after ``now``."""
        if not cameras or len(cameras) > MAX_CAMERAS:
            raise LocalProtocolError(f"a token names 1 to {MAX_CAMERAS} cameras")
        if not 0 < ttl <= MAX_TOKEN_TTL:
            raise LocalProtocolError(f"a token lives 1 to {MAX_TOKEN_TTL} seconds, not {ttl}")
        payload: dict[str, object] = {
            "c": list(dict.fromkeys(cameras)),
            "e": int(now) + ttl,
            "s": Scope.VIEW.value,
        }
        if issuer is not None:
            payload["u"] = issuer
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=True)
        signed = PREFIX + _b64(text.encode("ascii"))
        token = f"{signed}.{self._signature(signed)}"
        if len(token) > MAX_TOKEN_CHARS:
            raise LocalProtocolError("the token would be too long: name fewer cameras")
        return token

    def verify(self, token: str, *, now: float) -> Token:
        """Return what ``token`` grants; raise ``InvalidToken`` or ``ExpiredToken``."""
        # Bounded work before bounds: the length and the alphabet are checked before
        # any HMAC, base64 or JSON runs on the text.
        if len(token) > MAX_TOKEN_CHARS or not _SHAPE.fullmatch(token):
            raise InvalidToken("malformed token")
        signed, _, signature = token.rpartition(".")
        if not hmac.compare_digest(self._signature(signed), signature):
            raise InvalidToken("token signature does not match")
        try:
            payload = json.loads(_unb64(signed.removeprefix(PREFIX)))
        except (binascii.Error, ValueError):
            # Signed with our key, yet not ours: a key shared with something else.
            raise InvalidToken("token payload is not valid") from None
        grant = _grant(payload)
        if now >= grant.expires:
            raise ExpiredToken("token expired")
        return grant


def _grant(payload: object) -> Token:
    """Return the token a decoded payload describes; raise ``InvalidToken`` if it is not one."""
    if not isinstance(payload, dict) or not set(payload) <= _PAYLOAD_KEYS:
        raise InvalidToken("token payload is not valid")
    cameras, expires = payload.get("c"), payload.get("e")
    scope, issuer = payload.get("s"), payload.get("u")
    if (
        not isinstance(cameras, list)
        or not 0 < len(cameras) <= MAX_CAMERAS
        or not all(isinstance(name, str) for name in cameras)
        or not isinstance(expires, int)
        or isinstance(expires, bool)
        or not (issuer is None or isinstance(issuer, str))
    ):
        raise InvalidToken("token payload is not valid")
    try:
        granted = Scope(scope)
    except ValueError:
        raise InvalidToken("token scope is not known here") from None
    return Token(tuple(cameras), expires, granted, issuer)


def issue_for(config: GatewayConfig, cameras: Sequence[str], ttl: int | None, *, now: float) -> str:
    """Issue a token as ``gateway token`` does; raise ``ConfigError`` saying what is wrong."""
    if config.tokens.key is None:
        raise ConfigError("tokens: no [tokens] key is configured")
    ttl = config.tokens.default_ttl if ttl is None else ttl
    if not 0 < ttl <= MAX_TOKEN_TTL:
        raise ConfigError(f"--ttl must be from 1 to {MAX_TOKEN_TTL} seconds")
    names = []
    for key in cameras:
        camera = config.camera(key)
        if camera is None:
            known = ", ".join(c.name for c in config.cameras)
            raise ConfigError(f"--camera: no camera {key!r} (cameras: {known})")
        names.append(camera.name)
    signer = TokenSigner(config.tokens.key.value.encode())
    try:
        return signer.issue(names, now=now, ttl=ttl)
    except LocalProtocolError as exc:
        raise ConfigError(f"--camera: {exc}") from None
