"""Server side of HTTP authentication for the simulator: Basic (RFC 7617), Digest (RFC 7616).

Digest offers SHA-256 first and MD5 second (RFC 7616 §3.7), qop=auth only. Nonces
expire after a lifetime; a correct answer with an expired nonce gets ``stale=true``
(§3.3) so the client retries with the new nonce without asking the user again. Each
nonce remembers the highest ``nc`` seen, and a repeated or lower count is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: Realm the simulator announces (Axis cameras announce their product name).
REALM = "AXIS_SIM"
#: Digest algorithms offered, preferred first, with their hash (RFC 7616 §3.3).
DIGEST_ALGORITHMS: dict[str, Callable[[bytes], str]] = {
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
}
#: At most this many live nonces are remembered; the oldest are forgotten first.
MAX_NONCES = 1024

# auth-param = token BWS "=" BWS ( token / quoted-string )   (RFC 9110 §11.2)
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(slots=True)
class _Nonce:
    """What the server remembers about one nonce it issued."""

    #: Monotonic time of issue.
    issued: float
    #: Highest nonce count accepted so far.
    nc: int = 0


def parse_auth_params(text: str) -> dict[str, str]:
    """Parse ``name=value, name="quoted"`` pairs into a dict with lower-case names."""
    params: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        match = _PARAM.match(text, pos)
        if match is None or match.end() == pos:
            break
        quoted, token = match[2], match[3]
        params[match[1].lower()] = (
            re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else token or ""
        )
        pos = match.end()
    return params


class Authenticator:
    """Checks Authorization headers against one user for Basic or Digest."""

    def __init__(
        self,
        scheme: str,
        user: tuple[str, str],
        *,
        realm: str = REALM,
        nonce_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scheme = scheme
        self._name, self._password = user
        self.realm = realm
        self._ttl = nonce_ttl
        self._clock = clock
        self._nonces: OrderedDict[str, _Nonce] = OrderedDict()
        self._opaque = secrets.token_hex(8)

    def check(self, method: str, uri: str, header: str | None) -> list[str] | None:
        """Return None when header authorises the request, else the challenges to send."""
        scheme, _, rest = (header or "").strip().partition(" ")
        if self.scheme == "basic":
            if scheme.lower() == "basic" and self._basic_ok(rest.strip()):
                return None
            return [f'Basic realm="{self.realm}", charset="UTF-8"']
        stale = False
        if scheme.lower() == "digest":
            verdict = self._digest(method, uri, parse_auth_params(rest))
            if verdict == "ok":
                return None
            stale = verdict == "stale"
        return self.challenges(stale=stale)

    def challenges(self, *, stale: bool = False) -> list[str]:
        """Return fresh Digest challenges, SHA-256 first, sharing one new nonce."""
        now = self._clock()
        while self._nonces and (
            len(self._nonces) >= MAX_NONCES
            or now - next(iter(self._nonces.values())).issued > 2 * self._ttl
        ):
            self._nonces.popitem(last=False)
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = _Nonce(now)
        extra = ", stale=true" if stale else ""
        return [
            f'Digest realm="{self.realm}", qop="auth", algorithm={algorithm}, '
            f'nonce="{nonce}", opaque="{self._opaque}"{extra}'
            for algorithm in DIGEST_ALGORITHMS
        ]

    def _basic_ok(self, token: str) -> bool:
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        name, sep, password = decoded.partition(":")
        return bool(sep) and _same(name, self._name) & _same(password, self._password)

    def _digest(self, method: str, uri: str, params: dict[str, str]) -> str:
        """Return "ok", "stale" (right answer, expired nonce) or "bad"."""
        algorithm = params.get("algorithm", "MD5").upper()
        digest = DIGEST_ALGORITHMS.get(algorithm)
        state = self._nonces.get(params.get("nonce", ""))
        required = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")
        if digest is None or state is None or any(k not in params for k in required):
            return "bad"
        if params["qop"] != "auth" or params["realm"] != self.realm:
            return "bad"
        if params["uri"] != uri or not _same(params["username"], self._name):
            return "bad"
        try:
            nc = int(params["nc"], 16)
        except ValueError:
            return "bad"
        ha1 = digest(f"{self._name}:{self.realm}:{self._password}".encode())
        ha2 = digest(f"{method}:{uri}".encode())
        fields = (ha1, params["nonce"], params["nc"], params["cnonce"], "auth", ha2)
        if not _same(params["response"], digest(":".join(fields).encode())):
            return "bad"
        if self._clock() - state.issued > self._ttl:
            return "stale"
        if nc <= state.nc:
            return "bad"  # a replayed request (RFC 7616 §5.5)
        state.nc = nc
        return "ok"


def _same(a: str, b: str) -> bool:
    """Compare secrets in constant time."""
    return secrets.compare_digest(a.encode(), b.encode())
