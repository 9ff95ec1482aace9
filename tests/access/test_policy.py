"""gateway.access.policy: the decision, entry by entry (sans-IO, a fixed clock)."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from gateway.access.policy import (
    DENIAL_STATUS,
    RULES,
    Attempt,
    Denial,
    Family,
    Policy,
    Principal,
    Via,
    camera_view,
    same_origin,
)
from gateway.access.tokens import TokenSigner
from gateway.config import Role, parse_config

NOW = 1_700_000_000.0
KEY = "policy-test-key-0123456789"
CONFIG = f"""
[tokens]
key = "{KEY}"
[[users]]
name = "viewer"
password = "v-pw"
cameras = ["front"]
[[users]]
name = "operator"
password = "o-pw"
role = "operator"
cameras = ["front"]
[[users]]
name = "admin"
password = "a-pw"
role = "admin"
[[users]]
name = "warden"
password = "w-pw"
role = "admin"
cameras = ["front"]
[[cameras]]
name = "front"
source = "sim"
[[cameras]]
name = "yard"
source = "sim"
"""
POLICY = Policy(parse_config(CONFIG, {}))
SIGNER = TokenSigner(KEY.encode())


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def attempt(family: Family, camera: str | None = None, **kwargs: str | None) -> Attempt:
    fields: dict[str, str | None] = {"method": "GET", "remote": "192.0.2.7", **kwargs}
    method, remote = fields.pop("method"), fields.pop("remote")
    assert method is not None
    assert remote is not None
    return Attempt(method, family, camera, remote, **fields)


#: Who asks: (name, credentials as Attempt fields).
CALLERS: dict[str, dict[str, str | None]] = {
    "viewer": {"authorization": basic("viewer", "v-pw")},
    "operator": {"authorization": basic("operator", "o-pw")},
    "admin": {"authorization": basic("admin", "a-pw")},
    "warden": {"authorization": basic("warden", "w-pw")},
    "token": {"token": SIGNER.issue(["front"], now=NOW, ttl=60)},
    "bearer": {"authorization": "Bearer " + SIGNER.issue(["front"], now=NOW, ttl=60)},
    "nobody": {},
    "wrong": {"authorization": basic("admin", "v-pw")},
}
#: The family asked for and the camera named -> the status each caller gets.
#: front is everyone's camera; yard only the unrestricted admin's.
TABLE: list[tuple[Family, str | None, dict[str, int]]] = [
    (Family.PUBLIC, None, dict.fromkeys(CALLERS, 200)),
    (Family.PAGE, None, {**dict.fromkeys(CALLERS, 200), "nobody": 401, "wrong": 401}),
    (Family.MEDIA, "front", {**dict.fromkeys(CALLERS, 200), "nobody": 401, "wrong": 401}),
    (Family.MEDIA, "1", {**dict.fromkeys(CALLERS, 200), "nobody": 401, "wrong": 401}),
    (
        Family.MEDIA,
        "yard",
        {**dict.fromkeys(CALLERS, 403), "admin": 200, "nobody": 401, "wrong": 401},
    ),
    (Family.MEDIA, "2", {**dict.fromkeys(CALLERS, 403), "admin": 200, "nobody": 401, "wrong": 401}),
    # An unknown camera is the handler's 404.
    (Family.MEDIA, "back", {**dict.fromkeys(CALLERS, 200), "nobody": 401, "wrong": 401}),
    (Family.API, None, {**dict.fromkeys(CALLERS, 200), "nobody": 401, "wrong": 401}),
    (
        Family.API,
        "yard",
        {**dict.fromkeys(CALLERS, 403), "admin": 200, "nobody": 401, "wrong": 401},
    ),
    (
        Family.CONTROL,
        "front",
        {**dict.fromkeys(CALLERS, 403), "operator": 200, "admin": 200, "warden": 200}
        | {"nobody": 401, "wrong": 401},
    ),
    (
        Family.METRICS,
        None,
        {**dict.fromkeys(CALLERS, 403), "admin": 200, "nobody": 401, "wrong": 401},
    ),
    (
        Family.TOKENS,
        None,
        {**dict.fromkeys(CALLERS, 403), "admin": 200, "warden": 200, "nobody": 401, "wrong": 401},
    ),
    (Family.OTHER, None, {**dict.fromkeys(CALLERS, 200), "nobody": 401, "wrong": 401}),
    (
        Family.UNLISTED,
        None,
        {**dict.fromkeys(CALLERS, 403), "admin": 200, "warden": 200, "nobody": 401, "wrong": 401},
    ),
]


@pytest.mark.parametrize(("family", "camera", "expected"), TABLE)
def test_roles_by_families(family: Family, camera: str | None, expected: dict[str, int]) -> None:
    got = {
        name: POLICY.decide(attempt(family, camera, **fields), now=NOW).status
        for name, fields in CALLERS.items()
    }
    assert got == expected


def test_every_family_is_in_the_table_and_has_a_rule() -> None:
    assert {family for family, _, _ in TABLE} == set(Family) == set(RULES)
    assert set(DENIAL_STATUS) == set(Denial)


def test_reasons_are_one_line_and_name_no_credential() -> None:
    for family, camera, _ in TABLE:
        for fields in CALLERS.values():
            decision = POLICY.decide(attempt(family, camera, **fields), now=NOW)
            assert "\n" not in decision.reason
            for secret in ("v-pw", "o-pw", "a-pw", "w-pw", "gwt1."):
                assert secret not in decision.reason


@pytest.mark.parametrize(
    ("fields", "denial", "reason"),
    [
        ({}, Denial.NO_CREDENTIALS, "authentication required"),
        ({"authorization": basic("admin", "nope")}, Denial.BAD_PASSWORD, "wrong user name"),
        ({"authorization": basic("ghost", "a-pw")}, Denial.BAD_PASSWORD, "wrong user name"),
        ({"authorization": "Basic %%%"}, Denial.BAD_PASSWORD, "wrong user name"),
        (
            {"authorization": "Basic " + base64.b64encode(b"nocolon").decode()},
            Denial.BAD_PASSWORD,
            "",
        ),
        ({"authorization": "Digest x=y"}, Denial.BAD_SCHEME, "Basic or Bearer"),
        ({"authorization": "Bearer nonsense"}, Denial.BAD_TOKEN, "invalid token: malformed"),
        ({"token": ""}, Denial.BAD_TOKEN, "invalid token"),
        (
            {"token": SIGNER.issue(["front"], now=NOW - 61, ttl=60)},
            Denial.TOKEN_EXPIRED,
            "token expired",
        ),
        (
            {"token": TokenSigner(b"some other key!!").issue(["front"], now=NOW, ttl=60)},
            Denial.BAD_TOKEN,
            "signature",
        ),
        (
            {"token": SIGNER.issue(["front"], now=NOW, ttl=60, issuer="gone")},
            Denial.TOKEN_REVOKED,
            "no longer a user",
        ),
        ({"token": SIGNER.issue(["front"], now=NOW, ttl=60)}, Denial.CAMERA, "token may not see"),
        ({"authorization": basic("viewer", "v-pw")}, Denial.CAMERA, "user 'viewer' (viewer)"),
    ],
)
def test_denials_and_their_reasons(
    fields: dict[str, str | None], denial: Denial, reason: str
) -> None:
    decision = POLICY.decide(attempt(Family.MEDIA, "yard", **fields), now=NOW)
    assert decision.denial is denial
    assert decision.principal is None
    assert decision.status == DENIAL_STATUS[denial]
    assert reason in decision.reason


def test_a_header_is_read_before_the_query_token() -> None:
    token = SIGNER.issue(["front"], now=NOW, ttl=60)
    both = attempt(Family.MEDIA, "yard", authorization=basic("admin", "a-pw"), token=token)
    decision = POLICY.decide(both, now=NOW)
    assert decision.principal is not None
    assert decision.principal.via is Via.BASIC


def test_a_token_sees_no_more_than_its_issuer_does_now() -> None:
    token = SIGNER.issue(["front", "yard"], now=NOW, ttl=60, issuer="warden")
    decision = POLICY.decide(attempt(Family.MEDIA, "front", token=token), now=NOW)
    assert decision.principal == Principal(Role.VIEWER, frozenset({"front"}), Via.QUERY, "warden")
    decision = POLICY.decide(attempt(Family.MEDIA, "yard", token=token), now=NOW)
    assert decision.denial is Denial.CAMERA


def test_without_users_loopback_is_admin_and_others_are_refused() -> None:
    policy = Policy(parse_config('[[cameras]]\nname = "front"\nsource = "sim"\n', {}))
    for remote in ("127.0.0.1", "::1", "localhost"):
        decision = policy.decide(attempt(Family.METRICS, remote=remote), now=NOW)
        assert decision.principal == Principal(Role.ADMIN, None, Via.LOOPBACK)
    # Basic credentials mean nothing without users; the address decides.
    elsewhere = attempt(Family.PAGE, authorization=basic("admin", "a-pw"))
    decision = policy.decide(elsewhere, now=NOW)
    assert decision.denial is Denial.ANONYMOUS_REMOTE
    assert decision.status == 403
    # A token from elsewhere needs a key to be checked with.
    decision = policy.decide(attempt(Family.PAGE, token="gwt1.x.y"), now=NOW)
    assert decision.denial is Denial.TOKENS_DISABLED
    assert decision.status == 401


#: (method, Origin, Sec-Fetch-Site, Host) -> refused as cross-site with ambient credentials.
CROSS_SITE = [
    ("POST", None, None, "gw:8080", False),  # not a browser (curl, a WHEP client)
    ("POST", "http://gw:8080", None, "gw:8080", False),
    ("POST", "https://gw", None, "gw:443", False),
    ("POST", "http://GW:8080", "same-origin", "gw:8080", False),
    ("DELETE", None, "none", "gw:8080", False),
    ("POST", "http://evil.example", None, "gw:8080", True),
    ("PATCH", "http://gw:8081", None, "gw:8080", True),
    ("POST", "http://gw:8080", None, "gw:8081", True),
    ("POST", "null", None, "gw:8080", True),
    ("POST", "http://gw:8080", None, None, True),
    ("POST", None, "cross-site", "gw:8080", True),
    ("DELETE", None, "same-site", "gw:8080", True),
    ("POST", "http://gw:8080", "cross-site", "gw:8080", True),
    ("GET", "http://evil.example", "cross-site", "gw:8080", False),  # changes nothing
    ("HEAD", "http://evil.example", "cross-site", "gw:8080", False),
]


@pytest.mark.parametrize(("method", "origin", "site", "host", "refused"), CROSS_SITE)
def test_cross_site_requests_with_basic_credentials_are_refused(
    method: str, origin: str | None, site: str | None, host: str | None, refused: bool
) -> None:
    headers = {"origin": origin, "fetch_site": site, "host": host}
    request = attempt(Family.MEDIA, "front", method=method, **headers)
    token = SIGNER.issue(["front"], now=NOW, ttl=60)
    for credentials, ambient in (
        (replace(request, authorization=basic("admin", "a-pw")), True),
        (replace(request, authorization=f"Bearer {token}"), False),
        (replace(request, token=token), False),
    ):
        decision = POLICY.decide(credentials, now=NOW)
        assert (decision.denial is Denial.CROSS_SITE) == (refused and ambient), credentials
    # Loopback without users is ambient too: a foreign page can reach 127.0.0.1.
    open_policy = Policy(parse_config('[[cameras]]\nname = "front"\nsource = "sim"\n', {}))
    decision = open_policy.decide(replace(request, remote="127.0.0.1"), now=NOW)
    assert (decision.denial is Denial.CROSS_SITE) == refused


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("http://a:80", "a", True),
        ("http://a", "a:80", True),
        ("https://a", "a:443", True),
        ("http://[::1]:8080", "[::1]:8080", True),
        ("http://a:x", "a", False),
        ("a", "a", False),
    ],
)
def test_same_origin(origin: str, host: str, same: bool) -> None:
    assert same_origin(origin, host) is same


SNAPSHOT: dict[str, object] = {
    "name": "front",
    "index": 1,
    "source": "http://camera.internal",
    "streams": {
        "mjpeg": {
            "state": "backoff",
            "fps_in": 0.0,
            "resolution": "640x480",
            "last_error": "connect to camera.internal:80 refused",
            "url": "http://camera.internal/axis-cgi/mjpg/video.cgi",
            "bytes_in": 5,
        }
    },
    "renditions": [{"kind": "h264"}],
    "outputs": {"mp4": {}},
    "clients": [{"kind": "mjpeg", "remote": "192.0.2.9"}],
}


def test_viewers_see_state_and_rate_but_nothing_upstream_or_of_others() -> None:
    viewer = Principal(Role.VIEWER, None, Via.BASIC, "v")
    assert camera_view(viewer, SNAPSHOT) == {
        "name": "front",
        "index": 1,
        "streams": {"mjpeg": {"state": "backoff", "fps_in": 0.0, "resolution": "640x480"}},
    }
    operator = Principal(Role.OPERATOR, None, Via.BASIC, "o")
    assert camera_view(operator, SNAPSHOT) is SNAPSHOT
