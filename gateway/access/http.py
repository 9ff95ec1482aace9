"""Access control on the aiohttp side: the middleware, the denial counter, the token endpoint.

The middleware reads a request into an ``Attempt`` (which family of endpoints, which
camera, which credentials), asks ``Policy.decide``, and either answers the denial
(``401``/``403``, one line, counted by reason) or hands the request on with its
``Principal`` under ``GRANT``. The camera is read exactly where the handlers read it:
the path's ``{camera}``, else (Axis endpoints) ``camera=``, else camera 1.

A request admitted by ``?token=`` passes its token on: a ``Location`` the gateway
answers with (an HLS session's redirect, a WHEP session) gets it, and HLS playlists
add it to every URI they list (``carried_query``).
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web
from multidict import CIMultiDict

from gateway.config import MAX_TOKEN_TTL, GatewayConfig
from gateway.errors import LocalProtocolError

from .policy import Attempt, Decision, Denial, Family, Policy, Principal, Via

log = logging.getLogger("gateway.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TOKENS_PATH = "/api/tokens"
#: The largest token request body read (a JSON object naming a few cameras).
MAX_TOKEN_REQUEST = 4096
_NO_STORE = {"Cache-Control": "no-store"}


class CameraFrom(enum.Enum):
    """Where a family of paths names its camera."""

    NONE = "none"
    #: The route's ``{camera}``.
    PATH = "path"
    #: The route's ``{camera}`` (``/mjpg/N/``), else ``camera=``, else camera 1 (DESIGN §5).
    AXIS = "axis"


#: (route, whole route or prefix, family, camera): the first match wins. Matched against
#: the route's template (``/mp4/{camera}``), not the request's path: what decides is the
#: handler aiohttp picked, however the path was spelt.
ROUTES: tuple[tuple[str, bool, Family, CameraFrom], ...] = (
    ("/healthz", True, Family.PUBLIC, CameraFrom.NONE),
    # The page's scripts and styles: the same for everyone, and fetched without the
    # token a page opened with ``/?token=`` holds.
    ("/static", True, Family.PUBLIC, CameraFrom.NONE),
    ("/", True, Family.PAGE, CameraFrom.NONE),
    (TOKENS_PATH, True, Family.TOKENS, CameraFrom.NONE),
    ("/api/cameras", True, Family.API, CameraFrom.NONE),
    ("/api/cameras/{camera}", True, Family.API, CameraFrom.PATH),
    ("/metrics", True, Family.METRICS, CameraFrom.NONE),
    ("/axis-cgi/", False, Family.MEDIA, CameraFrom.AXIS),
    ("/mjpg/", False, Family.MEDIA, CameraFrom.AXIS),
    ("/jpg/", False, Family.MEDIA, CameraFrom.AXIS),
    ("/mp4/", False, Family.MEDIA, CameraFrom.PATH),
    ("/hls/", False, Family.MEDIA, CameraFrom.PATH),
    ("/whep/", False, Family.MEDIA, CameraFrom.PATH),
)


def route_of(request: web.Request) -> tuple[Family, str | None]:
    """Return the request's family and the camera it names (None for none)."""
    if request.method == "OPTIONS":
        # A CORS preflight carries no credentials by design (Fetch §4.8); it reveals
        # nothing but which methods a path takes.
        return Family.PUBLIC, None
    resource = request.match_info.route.resource
    if resource is None:
        # No handler: aiohttp answers 404 or 405.
        return Family.OTHER, None
    route = resource.canonical
    for prefix, whole, family, where in ROUTES:
        if route == prefix if whole else route.startswith(prefix):
            named = request.match_info.get("camera")
            if where is CameraFrom.AXIS:
                return family, named or request.query.get("camera") or "1"
            return family, named if where is CameraFrom.PATH else None
    # A route nobody classified here: admins only, until it is (fail closed).
    return Family.UNLISTED, None


def attempt_of(request: web.Request) -> Attempt:
    """Return the facts of ``request`` that access depends on."""
    family, camera = route_of(request)
    headers = request.headers
    return Attempt(
        method=request.method,
        family=family,
        camera=camera,
        remote=request.remote or "",
        authorization=headers.get("Authorization"),
        token=request.query.get("token"),
        origin=headers.get("Origin"),
        fetch_site=headers.get("Sec-Fetch-Site"),
        host=headers.get("Host"),
    )


@dataclass(slots=True)
class Denials:
    """Requests refused, by status and reason (``gateway_access_denials_total``)."""

    counts: dict[tuple[int, str], int] = field(default_factory=dict)

    def count(self, decision: Decision) -> None:
        """Count one refusal."""
        assert decision.denial is not None
        key = (decision.status, decision.denial.value)
        self.counts[key] = self.counts.get(key, 0) + 1

    def total(self) -> int:
        """Return every refusal so far."""
        return sum(self.counts.values())


@dataclass(slots=True)
class Access:
    """One app's access control: its policy and the clock tokens expire by."""

    policy: Policy
    #: Unix seconds now (tests put a fake clock here).
    clock: Callable[[], float] = time.time


ACCESS = web.AppKey("access", Access)
DENIALS = web.AppKey("access_denials", Denials)
#: Whom an admitted request acts for.
GRANT = web.RequestKey("access_grant", Principal)


def _refusal(decision: Decision, policy: Policy) -> web.Response:
    headers = CIMultiDict(_NO_STORE)
    if decision.status == 401:
        if decision.denial in (Denial.BAD_TOKEN, Denial.TOKEN_EXPIRED, Denial.TOKEN_REVOKED):
            # RFC 6750 §3.1: the token is the problem, not the lack of one.
            headers.add("WWW-Authenticate", 'Bearer realm="gateway", error="invalid_token"')
        else:
            headers.add("WWW-Authenticate", 'Basic realm="gateway", charset="UTF-8"')
            if policy.signer is not None:
                headers.add("WWW-Authenticate", 'Bearer realm="gateway"')
    return web.Response(
        status=decision.status,
        text=f"Error: {decision.reason}\n",
        content_type="text/plain",
        headers=headers,
    )


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admit the request with its principal under ``GRANT``, or answer its denial."""
    access = request.app[ACCESS]
    decision = access.policy.decide(attempt_of(request), now=access.clock())
    if decision.principal is None:
        request.app[DENIALS].count(decision)
        assert decision.denial is not None
        # The address only: the path or query may hold a token.
        log.debug("refused %s (%s) from %s", decision.status, decision.denial.value, request.remote)
        return _refusal(decision, access.policy)
    request[GRANT] = decision.principal
    return await handler(request)


def principal(request: web.Request) -> Principal:
    """Return whom the admitted ``request`` acts for."""
    return request[GRANT]


def carried_query(request: web.Request) -> str | None:
    """Return ``token=...`` when ``request`` was admitted by its query token, else None."""
    grant = request.get(GRANT)
    token = request.query.get("token")
    if grant is None or grant.via is not Via.QUERY or token is None:
        return None
    return urlencode({"token": token})


def with_query(uri: str, query: str) -> str:
    """Return ``uri`` with ``query`` added to its query string."""
    path, hash_, fragment = uri.partition("#")
    return f"{path}{'&' if '?' in path else '?'}{query}{hash_}{fragment}"


async def _carry_token(request: web.Request, response: web.StreamResponse) -> None:
    """Give a ``Location`` on this server the query token its request was admitted by."""
    query = carried_query(request)
    location = response.headers.get("Location")
    if query is None or location is None or "//" in location or "token=" in location:
        return
    response.headers["Location"] = with_query(location, query)


def _error(status: int, reason: str) -> web.Response:
    return web.Response(
        status=status, text=f"Error: {reason}\n", content_type="text/plain", headers=_NO_STORE
    )


async def _token_request(request: web.Request) -> dict[str, object] | web.Response:
    """Return the token request's JSON object (``{}`` for an empty body), or a 4xx."""
    body = await request.content.read(MAX_TOKEN_REQUEST + 1)
    if len(body) > MAX_TOKEN_REQUEST:
        return _error(413, f"the request is larger than {MAX_TOKEN_REQUEST} bytes")
    if not body.strip():
        return {}
    if request.content_type != "application/json":
        return _error(415, "Content-Type must be application/json")
    try:
        data = json.loads(body)
    except ValueError:
        return _error(400, "the body is not JSON")
    if not isinstance(data, dict) or not set(data) <= {"cameras", "ttl"}:
        return _error(400, 'the body must be {"cameras": [...], "ttl": seconds}')
    return data


async def issue_token(request: web.Request) -> web.Response:
    """Issue a viewing token: ``{"cameras": [names], "ttl": seconds}`` -> ``201`` JSON."""
    access = request.app[ACCESS]
    config = access.policy.config
    signer = access.policy.signer
    if signer is None:
        return _error(404, "tokens are not enabled here: set [tokens] key")
    data = await _token_request(request)
    if isinstance(data, web.Response):
        return data
    keys, ttl = data.get("cameras"), data.get("ttl", config.tokens.default_ttl)
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        return _error(400, '"cameras" must be a list of camera names')
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= MAX_TOKEN_TTL:
        return _error(400, f'"ttl" must be an integer from 1 to {MAX_TOKEN_TTL} seconds')
    issuer = principal(request)
    names = []
    for key in keys:
        camera = config.camera(key)
        if camera is None:
            return _error(400, f"no camera {key[:40]!r}")
        if not issuer.may_view(camera.name):
            decision = Decision(
                denial=Denial.CAMERA,
                reason=f"{issuer.describe()} may not see camera {camera.name!r}",
            )
            request.app[DENIALS].count(decision)
            return _refusal(decision, access.policy)
        names.append(camera.name)
    now = access.clock()
    try:
        token = signer.issue(names, now=now, ttl=ttl, issuer=issuer.user)
    except LocalProtocolError:
        return _error(400, "too many cameras for one token")
    answer = {
        "token": token,
        "cameras": list(dict.fromkeys(names)),
        "scope": "view",
        "expires": int(now) + ttl,
        "ttl": ttl,
    }
    return web.json_response(answer, status=201, headers=_NO_STORE)


def add_access(app: web.Application, config: GatewayConfig) -> None:
    """Put access control on ``app``: its keys, middleware, hook and token endpoint."""
    app[ACCESS] = Access(Policy(config))
    app[DENIALS] = Denials()
    app.middlewares.append(access_middleware)
    app.on_response_prepare.append(_carry_token)
    app.router.add_post(TOKENS_PATH, issue_token)
