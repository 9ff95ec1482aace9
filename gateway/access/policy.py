"""Who may do what: roles, per-user camera lists, tokens and the cross-site rule.

``Policy.decide`` is the one decision: the facts of a request (an ``Attempt``: what it
asks for, its credentials, where it comes from) in, a ``Decision`` (a ``Principal``,
or a ``Denial`` with its status and a one-line reason) out. Sans-IO: the aiohttp side
(gateway/access/http.py) reads the request and answers; the clock is an argument.

Roles nest: a viewer watches (every media output, the page, a reduced ``/api`` of its
cameras), an operator also reads ``/api`` in full and uses control endpoints, an
admin also reads ``/metrics`` and issues tokens. A token is a viewer for its cameras.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.config import GatewayConfig, Role, UserConfig, find_camera, is_loopback

from .tokens import ExpiredToken, InvalidToken, TokenSigner

#: Each role's rank: a role may do everything a lower one may.
RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
#: Methods that change nothing (RFC 9110 §9.2.1): exempt from the cross-site rule.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: ``Sec-Fetch-Site`` values of a request the gateway's own pages (or no page) made.
_OWN_SITES = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Family(enum.Enum):
    """What a request asks for, as far as access goes."""

    #: ``/healthz``, ``/static/``, CORS preflights: open to anyone.
    PUBLIC = "public"
    #: ``/``: the web page.
    PAGE = "page"
    #: Axis, fMP4, HLS and WHEP: a camera's media.
    MEDIA = "media"
    #: ``/api/cameras``: state, reduced for viewers.
    API = "api"
    #: Endpoints that change a camera or the gateway (none yet).
    CONTROL = "control"
    #: ``/metrics``: every camera's figures.
    METRICS = "metrics"
    #: ``/api/tokens``: issuing tokens.
    TOKENS = "tokens"
    #: A path no handler takes (answered 404 or 405 once admitted).
    OTHER = "other"
    #: A handler the access table does not list: admins only.
    UNLISTED = "unlisted"


@dataclass(frozen=True, slots=True)
class Rule:
    """What a family of requests needs."""

    #: The lowest role admitted; None: no credentials needed.
    role: Role | None
    #: What a refused principal may not do, for the reason line.
    action: str
    #: The principal must see every camera (the answer covers them all).
    all_cameras: bool = False


#: Every family's rule: the roles-by-endpoints table (README "Access control").
RULES: dict[Family, Rule] = {
    Family.PUBLIC: Rule(None, "reach public paths"),
    Family.PAGE: Rule(Role.VIEWER, "open the page"),
    Family.MEDIA: Rule(Role.VIEWER, "watch"),
    Family.API: Rule(Role.VIEWER, "read the API"),
    Family.CONTROL: Rule(Role.OPERATOR, "use control endpoints"),
    Family.METRICS: Rule(Role.ADMIN, "read the metrics", all_cameras=True),
    Family.TOKENS: Rule(Role.ADMIN, "issue tokens"),
    Family.OTHER: Rule(Role.VIEWER, "reach this path"),
    Family.UNLISTED: Rule(Role.ADMIN, "reach this endpoint"),
}


class Via(enum.Enum):
    """How the principal proved who it is."""

    BASIC = "basic"
    BEARER = "bearer"
    #: ``?token=`` in the URL (the gateway carries it on to the URLs it hands out).
    QUERY = "query"
    #: No credentials, from loopback, with no ``[[users]]`` configured.
    LOOPBACK = "loopback"
    #: None looked at: a public path.
    NONE = "none"


class Denial(enum.Enum):
    """Why a request was refused (the ``reason`` label of the denial counter)."""

    NO_CREDENTIALS = "no_credentials"
    BAD_PASSWORD = "bad_password"  # noqa: S105 - a reason, not a secret
    BAD_SCHEME = "bad_scheme"
    BAD_TOKEN = "bad_token"  # noqa: S105 - a reason, not a secret
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 - a reason, not a secret
    TOKENS_DISABLED = "tokens_disabled"
    TOKEN_REVOKED = "token_revoked"  # noqa: S105 - a reason, not a secret
    ANONYMOUS_REMOTE = "anonymous_remote"
    ROLE = "role"
    CAMERA = "camera"
    CROSS_SITE = "cross_site"


#: The status of each denial: 401 asks for (other) credentials, 403 refuses these.
DENIAL_STATUS: dict[Denial, int] = {
    Denial.NO_CREDENTIALS: 401,
    Denial.BAD_PASSWORD: 401,
    Denial.BAD_SCHEME: 401,
    Denial.BAD_TOKEN: 401,
    Denial.TOKEN_EXPIRED: 401,
    Denial.TOKENS_DISABLED: 401,
    Denial.TOKEN_REVOKED: 401,
    Denial.ANONYMOUS_REMOTE: 403,
    Denial.ROLE: 403,
    Denial.CAMERA: 403,
    Denial.CROSS_SITE: 403,
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for."""

    role: Role
    #: Names of the cameras it may see; None: every camera.
    cameras: frozenset[str] | None
    via: Via
    #: The user's name (Basic) or the token's issuer, if any.
    user: str | None = None

    def may_view(self, camera: str) -> bool:
        """Return True if the principal may see the camera named ``camera``."""
        return self.cameras is None or camera in self.cameras

    def at_least(self, role: Role) -> bool:
        """Return True if the principal's role is ``role`` or higher."""
        return RANK[self.role] >= RANK[role]

    def describe(self) -> str:
        """Return who it is, for a reason line (never a credential)."""
        if self.via in (Via.BEARER, Via.QUERY):
            return "this token"
        if self.via in (Via.LOOPBACK, Via.NONE):
            return "an anonymous client"
        return f"user {self.user!r} ({self.role.value})"


#: Whom a request for a public path acts for: nobody in particular.
PUBLIC = Principal(Role.VIEWER, frozenset(), Via.NONE)


@dataclass(frozen=True, slots=True)
class Attempt:
    """The facts of one request that access depends on."""

    method: str
    family: Family
    #: The camera the request names (a name or a 1-based position), None for none.
    camera: str | None
    #: The client's address.
    remote: str
    #: The ``Authorization`` header, None when absent.
    authorization: str | None = None
    #: The ``token`` query parameter, None when absent.
    token: str | None = None
    #: ``Origin``, ``Sec-Fetch-Site`` and ``Host`` headers (cross-site requests).
    origin: str | None = None
    fetch_site: str | None = None
    host: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """A principal to act for, or why not."""

    principal: Principal | None = None
    denial: Denial | None = None
    #: One line, no credentials, for the response body.
    reason: str = ""

    @property
    def status(self) -> int:
        """Return 200 when admitted, else the denial's 401 or 403."""
        return 200 if self.denial is None else DENIAL_STATUS[self.denial]


def _deny(denial: Denial, reason: str) -> Decision:
    return Decision(denial=denial, reason=reason)


def _check_basic(header: str, users: tuple[UserConfig, ...]) -> UserConfig | None:
    """Return the user whose name and password the Basic credentials give, else None."""
    try:
        raw = base64.b64decode(header.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = raw.partition(":")
    if not sep:
        return None
    found = None
    for user in users:
        # Every user is compared, name and password, so the time taken does not tell
        # which names exist.
        same_name = hmac.compare_digest(user.name.encode(), name.encode())
        if same_name & hmac.compare_digest(user.password.value.encode(), password.encode()):
            found = user
    return found


def same_origin(origin: str, host: str | None) -> bool:
    """Return True if ``origin`` names the ``Host`` the request was sent to.

    Scheme aside: behind a TLS-terminating proxy the gateway sees ``http`` while the
    browser says ``https``; host and port are what a foreign page cannot fake.
    """
    if host is None or origin == "null":
        return False
    try:
        theirs, ours = urlsplit(origin), urlsplit(f"//{host}")
        default = _DEFAULT_PORTS.get(theirs.scheme)
        return theirs.hostname is not None and (theirs.hostname, theirs.port or default) == (
            ours.hostname,
            ours.port or default,
        )
    except ValueError:  # a port that is not a number
        return False


class Policy:
    """The access rules of one configuration."""

    def __init__(self, config: GatewayConfig) -> None:
        """Apply ``config``'s users, cameras and token key."""
        self.config = config
        key = config.tokens.key
        self.signer = TokenSigner(key.value.encode()) if key is not None else None

    def decide(self, attempt: Attempt, *, now: float) -> Decision:
        """Return whom ``attempt`` acts for, or why it is refused (``now``: Unix seconds)."""
        rule = RULES[attempt.family]
        if rule.role is None:
            return Decision(PUBLIC)
        decision = self.authenticate(attempt, now=now)
        principal = decision.principal
        if principal is None:
            return decision
        if attempt.method not in SAFE_METHODS and self._cross_site(attempt, principal):
            return _deny(
                Denial.CROSS_SITE,
                "cross-site request refused: send a bearer token, or use the gateway's own page",
            )
        if not principal.at_least(rule.role):
            return _deny(Denial.ROLE, f"{principal.describe()} may not {rule.action}")
        who = principal.describe()
        if rule.all_cameras and principal.cameras is not None:
            return _deny(Denial.CAMERA, f"{who} may see only some cameras: {rule.action} shows all")
        key = attempt.camera
        camera = None if key is None else find_camera(self.config.cameras, key)
        # An unknown camera is the handler's 404: nothing to protect.
        if camera is not None and not principal.may_view(camera.name):
            return _deny(Denial.CAMERA, f"{who} may not see camera {camera.name!r}")
        return decision

    def authenticate(self, attempt: Attempt, *, now: float) -> Decision:
        """Return the principal the request's credentials prove, or why they do not."""
        users = self.config.users
        header = attempt.authorization
        if header is not None:
            scheme, _, value = header.strip().partition(" ")
            scheme = scheme.lower()
            if scheme == "bearer":
                return self._token(value.strip(), Via.BEARER, now)
            if scheme == "basic" and users:
                user = _check_basic(value, users)
                if user is None:
                    return _deny(Denial.BAD_PASSWORD, "wrong user name or password")
                cameras = None if user.cameras is None else frozenset(user.cameras)
                return Decision(Principal(user.role, cameras, Via.BASIC, user.name))
            if scheme != "basic":
                return _deny(Denial.BAD_SCHEME, "Authorization must be Basic or Bearer")
        if attempt.token is not None:
            return self._token(attempt.token, Via.QUERY, now)
        if users:
            return _deny(Denial.NO_CREDENTIALS, "authentication required")
        if is_loopback(attempt.remote):
            return Decision(Principal(Role.ADMIN, None, Via.LOOPBACK))
        return _deny(
            Denial.ANONYMOUS_REMOTE,
            "anonymous access is allowed only from loopback; configure [[users]]",
        )

    def _token(self, text: str, via: Via, now: float) -> Decision:
        if self.signer is None:
            return _deny(Denial.TOKENS_DISABLED, "tokens are not enabled here ([tokens] key)")
        try:
            token = self.signer.verify(text, now=now)
        except ExpiredToken:
            return _deny(Denial.TOKEN_EXPIRED, "token expired")
        except InvalidToken as exc:
            return _deny(Denial.BAD_TOKEN, f"invalid token: {exc}")
        cameras = frozenset(token.cameras)
        if token.issuer is not None:
            # A token lives no longer than its issuer's account, and sees no more.
            issuer = next((u for u in self.config.users if u.name == token.issuer), None)
            if issuer is None:
                return _deny(Denial.TOKEN_REVOKED, "the token's issuer is no longer a user")
            if issuer.cameras is not None:
                cameras &= frozenset(issuer.cameras)
        return Decision(Principal(Role.VIEWER, cameras, via, token.issuer))

    def _cross_site(self, attempt: Attempt, principal: Principal) -> bool:
        """Return True for a browser request from another site riding ambient credentials.

        Basic credentials (and a loopback client's address) are sent by the browser on
        its own, so a page on another site could act with them (CSRF); a token is sent
        only by code that holds it. ``Sec-Fetch-Site`` where the browser sends it, else
        ``Origin`` (every browser sends it on a cross-origin POST, PATCH or DELETE).
        """
        if principal.via not in (Via.BASIC, Via.LOOPBACK):
            return False
        if attempt.fetch_site is not None and attempt.fetch_site.lower() not in _OWN_SITES:
            return True
        return attempt.origin is not None and not same_origin(attempt.origin, attempt.host)


#: ``/api`` stream figures a viewer sees: enough for the page, nothing about upstream.
VIEWER_STREAM_FIELDS = ("state", "fps_in", "resolution", "codec", "prebuffer_seconds", "level_dbfs")


def camera_view(principal: Principal, camera: dict[str, object]) -> dict[str, object]:
    """Return what ``principal`` sees of an ``/api`` camera object.

    Operators and admins see it whole. A viewer sees the name, the position and each
    stream's state and rate: no upstream URL or error (host names, firmware), no
    renditions or outputs, no other client's address.
    """
    if principal.at_least(Role.OPERATOR):
        return camera
    streams = camera.get("streams")
    assert isinstance(streams, dict)
    return {
        "name": camera["name"],
        "index": camera["index"],
        "streams": {
            kind: {key: figures[key] for key in VIEWER_STREAM_FIELDS if key in figures}
            for kind, figures in streams.items()
        },
    }
