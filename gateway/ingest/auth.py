"""Sans-IO HTTP authentication for cameras: Basic (RFC 7617) and Digest (RFC 7616).

The authenticator remembers the last challenge, so a reconnect sends credentials at
once with the same nonce and the next ``nc`` (RFC 7616 §3.4) instead of paying a 401
round trip; ``stale=true`` renews the nonce without counting as a failure (§3.3).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

#: Digest algorithms we support, strongest first (RFC 7616 §3.3, §6.1).
_ALGORITHMS: dict[str, Callable[[bytes], str]] = {
    "SHA-256": lambda b: hashlib.sha256(b).hexdigest(),
    "MD5": lambda b: hashlib.md5(b, usedforsecurity=False).hexdigest(),
}
_STRENGTH = ("SHA-256-SESS", "SHA-256", "MD5-SESS", "MD5")

# auth-param = token BWS "=" BWS ( token / quoted-string )   (RFC 9110 §11.2)
_PARAM = re.compile(r'\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*,?')
_SCHEME = re.compile(r"\s*,?\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)(?=\s|$|,)")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
#: Longest parameter value taken from a challenge (a nonce is 32-64 characters; RFC 7616
#: sets no limit). Checked on the raw text, before any unescaping.
MAX_PARAM_VALUE = 1024
#: Challenges read from one response (the strongest we support is picked among them).
MAX_CHALLENGES = 16


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge."""

    #: Lower-case scheme, e.g. ``digest``.
    scheme: str
    #: Lower-case parameter names to values (quotes removed).
    params: dict[str, str] = field(default_factory=dict)

    @property
    def algorithm(self) -> str:
        """Return the upper-case Digest algorithm (MD5 when absent)."""
        return self.params.get("algorithm", "MD5").upper()

    @property
    def stale(self) -> bool:
        """Return True when the server only refused an expired nonce."""
        return self.params.get("stale", "").lower() == "true"


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Parse the challenges in the given ``WWW-Authenticate`` header values.

    Work is bounded before anything is transformed: a challenge with a parameter value
    longer than MAX_PARAM_VALUE is skipped without unescaping it, and parsing stops after
    MAX_CHALLENGES challenges.
    """
    challenges: list[Challenge] = []
    for value in values:
        pos = 0
        while pos < len(value) and len(challenges) < MAX_CHALLENGES:
            match = _SCHEME.match(value, pos)
            if match is None:
                break
            scheme, pos = match[1].lower(), match.end()
            params: dict[str, str] | None = {}
            while True:
                param = _PARAM.match(value, pos)
                if param is None:
                    break
                pos = param.end()
                raw = param[2]
                if params is None:
                    continue
                quoted = raw.startswith('"')
                if len(raw) > MAX_PARAM_VALUE + 2 * quoted:
                    params = None  # unanswerable: skip the whole challenge, unescaped
                    continue
                params[param[1].lower()] = _QUOTED_PAIR.sub(r"\1", raw[1:-1]) if quoted else raw
            if params is not None:
                challenges.append(Challenge(scheme, params))
            # token68 forms (e.g. "Negotiate abc=") are not schemes we use: skip the rest.
            if pos < len(value) and _SCHEME.match(value, pos) is None:
                break
    return challenges


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ChallengeResult(enum.Enum):
    """What to do after a 401."""

    #: A new or renewed challenge: retry now with credentials (not a failure).
    RETRY = "retry"
    #: The server refused the credentials we computed for its own challenge.
    REJECTED = "rejected"
    #: No challenge we can answer.
    UNSUPPORTED = "unsupported"


class Authenticator:
    """Answer Basic or Digest challenges for one origin with one set of credentials."""

    def __init__(
        self, username: str, password: str, *, cnonce: Callable[[], str] | None = None
    ) -> None:
        self._username = username
        self._password = password
        self._cnonce = cnonce or (lambda: secrets.token_hex(16))
        self._challenge: Challenge | None = None
        self._nc = 0
        #: True when the last ``authorization()`` answered a challenge seen on this request.
        self._fresh = False

    @property
    def challenge(self) -> Challenge | None:
        """Return the challenge being answered, if any."""
        return self._challenge

    @property
    def nc(self) -> int:
        """Return the nonce count of the last Digest answer."""
        return self._nc

    def handle_challenge(self, values: list[str]) -> ChallengeResult:
        """Take a 401's ``WWW-Authenticate`` values; say whether retrying can help."""
        offered = parse_challenges(values)
        chosen = _strongest(offered)
        if chosen is None:
            return ChallengeResult.UNSUPPORTED
        previous, fresh = self._challenge, self._fresh
        self._challenge = chosen
        if chosen.scheme == "digest" and chosen.params.get("nonce") != (
            previous.params.get("nonce") if previous else None
        ):
            self._nc = 0
        if previous is None or chosen.stale:
            self._fresh = True
            return ChallengeResult.RETRY
        if not fresh and chosen.params.get("nonce") != previous.params.get("nonce"):
            # Our remembered nonce was forgotten by the server: answer the new one once.
            self._fresh = True
            return ChallengeResult.RETRY
        return ChallengeResult.REJECTED

    def forget_request(self) -> None:
        """Mark the remembered challenge as carried over from an earlier request."""
        self._fresh = False

    def authorization(self, method: str, uri: str) -> str | None:
        """Return the ``Authorization`` value for a request, or None before any challenge."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            token = f"{self._username}:{self._password}".encode()
            return "Basic " + base64.b64encode(token).decode("ascii")
        self._nc += 1
        return self.digest(challenge, method, uri, self._nc, self._cnonce())

    def digest(self, challenge: Challenge, method: str, uri: str, nc: int, cnonce: str) -> str:
        """Return the Digest ``Authorization`` value (RFC 7616 §3.4)."""
        params = challenge.params
        algorithm = challenge.algorithm
        hash_ = _ALGORITHMS[algorithm.removesuffix("-SESS")]
        realm, nonce = params.get("realm", ""), params.get("nonce", "")
        nc_text = f"{nc:08x}"
        ha1 = hash_(f"{self._username}:{realm}:{self._password}".encode())
        if algorithm.endswith("-SESS"):
            ha1 = hash_(f"{ha1}:{nonce}:{cnonce}".encode())
        ha2 = hash_(f"{method}:{uri}".encode())
        qops = [q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()]
        fields = [
            f"username={_quote(self._username)}",
            f"realm={_quote(realm)}",
            f"uri={_quote(uri)}",
            f"algorithm={params.get('algorithm', 'MD5')}",
            f"nonce={_quote(nonce)}",
        ]
        if "auth" in qops:
            response = hash_(f"{ha1}:{nonce}:{nc_text}:{cnonce}:auth:{ha2}".encode())
            fields += [f"nc={nc_text}", f"cnonce={_quote(cnonce)}", "qop=auth"]
        else:
            # RFC 2069 compatibility for old firmware that offers no qop.
            response = hash_(f"{ha1}:{nonce}:{ha2}".encode())
        fields.append(f"response={_quote(response)}")
        if "opaque" in params:
            fields.append(f"opaque={_quote(params['opaque'])}")
        return "Digest " + ", ".join(fields)


def _strongest(offered: list[Challenge]) -> Challenge | None:
    """Return the strongest Digest challenge we support, else Basic, else None."""
    best: Challenge | None = None
    best_rank = len(_STRENGTH)
    for challenge in offered:
        if challenge.scheme != "digest":
            continue
        qops = challenge.params.get("qop")
        if qops is not None and "auth" not in [q.strip().lower() for q in qops.split(",")]:
            continue  # auth-int only: we do not hash bodies
        algorithm = challenge.algorithm
        if algorithm in _STRENGTH and _STRENGTH.index(algorithm) < best_rank:
            best, best_rank = challenge, _STRENGTH.index(algorithm)
    if best is not None:
        return best
    return next((c for c in offered if c.scheme == "basic"), None)
