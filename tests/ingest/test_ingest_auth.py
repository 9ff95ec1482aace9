"""gateway.ingest.auth: RFC 7616 §3.9.1 examples, algorithm choice, stale and nc handling."""

from __future__ import annotations

import base64

import pytest

from gateway.ingest import auth
from gateway.ingest.auth import (
    MAX_CHALLENGES,
    MAX_PARAM_VALUE,
    Authenticator,
    ChallengeResult,
    parse_challenges,
)

# RFC 7616 §3.9.1: the "Mufasa" example.
REALM = "http-auth@example.org"
NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC_CHALLENGE = (
    f'Digest realm="{REALM}", qop="auth, auth-int", algorithm=SHA-256, nonce="{NONCE}", '
    f'opaque="{OPAQUE}", Digest realm="{REALM}", qop="auth, auth-int", algorithm=MD5, '
    f'nonce="{NONCE}", opaque="{OPAQUE}"'
)


def fields(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    assert scheme == "Digest"
    (challenge,) = parse_challenges([f"Digest {rest}"])
    return challenge.params


def mufasa() -> Authenticator:
    return Authenticator("Mufasa", "Circle of Life", cnonce=lambda: CNONCE)


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example_responses(algorithm: str, response: str) -> None:
    challenge = parse_challenges(
        [
            f'Digest realm="{REALM}", qop="auth", algorithm={algorithm}, nonce="{NONCE}", '
            f'opaque="{OPAQUE}"'
        ]
    )[0]
    header = mufasa().digest(challenge, "GET", "/dir/index.html", 1, CNONCE)
    got = fields(header)
    assert got["response"] == response
    assert got["nc"] == "00000001"
    assert got["qop"] == "auth"
    assert got["cnonce"] == CNONCE
    assert got["opaque"] == OPAQUE
    assert got["uri"] == "/dir/index.html"
    assert got["algorithm"] == algorithm


def test_strongest_offered_algorithm_is_chosen() -> None:
    auth = mufasa()
    assert auth.handle_challenge([RFC_CHALLENGE]) is ChallengeResult.RETRY
    header = auth.authorization("GET", "/dir/index.html")
    assert header is not None
    assert fields(header)["response"] == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )


def test_digest_preferred_over_basic_and_unknown_algorithms_ignored() -> None:
    auth = Authenticator("u", "p")
    values = [
        'Basic realm="cam"',
        'Digest realm="r", nonce="n", algorithm=SHA-512-256, qop="auth"',
        'Digest realm="r", nonce="n2", qop="auth"',
    ]
    assert auth.handle_challenge(values) is ChallengeResult.RETRY
    assert auth.challenge is not None
    assert auth.challenge.params["nonce"] == "n2"


def test_basic() -> None:
    auth = Authenticator("root", "pa:ss")
    assert auth.authorization("GET", "/") is None  # nothing before a challenge
    assert auth.handle_challenge(['Basic realm="AXIS_ACCC8E000000"']) is ChallengeResult.RETRY
    header = auth.authorization("GET", "/")
    assert header == "Basic " + base64.b64encode(b"root:pa:ss").decode()
    assert auth.handle_challenge(['Basic realm="AXIS_ACCC8E000000"']) is ChallengeResult.REJECTED


def test_nonce_reused_with_incrementing_nc_across_requests() -> None:
    auth = Authenticator("u", "p", cnonce=lambda: "c")
    auth.handle_challenge(['Digest realm="r", nonce="n1", qop="auth"'])
    ncs = []
    for _ in range(3):
        auth.forget_request()  # a reconnect
        header = auth.authorization("GET", "/axis-cgi/mjpg/video.cgi")
        assert header is not None
        ncs.append(fields(header)["nc"])
        assert fields(header)["nonce"] == "n1"
    assert ncs == ["00000001", "00000002", "00000003"]


def test_stale_nonce_retries_with_new_nonce_and_resets_nc() -> None:
    auth = Authenticator("u", "p", cnonce=lambda: "c")
    auth.handle_challenge(['Digest realm="r", nonce="n1", qop="auth"'])
    auth.authorization("GET", "/")
    auth.authorization("GET", "/")
    stale = ['Digest realm="r", nonce="n2", qop="auth", stale=true']
    assert auth.handle_challenge(stale) is ChallengeResult.RETRY
    header = auth.authorization("GET", "/")
    assert header is not None
    assert (fields(header)["nonce"], fields(header)["nc"]) == ("n2", "00000001")


def test_wrong_password_is_rejected_after_one_fresh_answer() -> None:
    auth = Authenticator("u", "wrong")
    assert auth.handle_challenge(['Digest realm="r", nonce="n1", qop="auth"']) is (
        ChallengeResult.RETRY
    )
    auth.authorization("GET", "/")
    # Servers often send a new nonce with every 401: still a rejection.
    assert auth.handle_challenge(['Digest realm="r", nonce="n2", qop="auth"']) is (
        ChallengeResult.REJECTED
    )


def test_forgotten_nonce_on_reconnect_is_answered_once() -> None:
    auth = Authenticator("u", "p")
    auth.handle_challenge(['Digest realm="r", nonce="n1", qop="auth"'])
    auth.authorization("GET", "/")
    auth.forget_request()  # reconnect: the remembered nonce is sent preemptively...
    auth.authorization("GET", "/")
    # ...and the camera (rebooted) no longer knows it, without saying stale.
    assert auth.handle_challenge(['Digest realm="r", nonce="n9", qop="auth"']) is (
        ChallengeResult.RETRY
    )
    auth.authorization("GET", "/")
    assert auth.handle_challenge(['Digest realm="r", nonce="n10", qop="auth"']) is (
        ChallengeResult.REJECTED
    )


def test_unsupported_challenges() -> None:
    auth = Authenticator("u", "p")
    assert auth.handle_challenge([]) is ChallengeResult.UNSUPPORTED
    assert auth.handle_challenge(["Negotiate abc="]) is ChallengeResult.UNSUPPORTED
    only_int = ['Digest realm="r", nonce="n", qop="auth-int"']
    assert auth.handle_challenge(only_int) is ChallengeResult.UNSUPPORTED


def test_rfc2069_digest_without_qop_and_sess_variant() -> None:
    auth = Authenticator("u", "p", cnonce=lambda: "c")
    auth.handle_challenge(['Digest realm="r", nonce="n"'])
    header = auth.authorization("GET", "/")
    assert header is not None
    assert "qop" not in fields(header)
    assert "nc" not in fields(header)
    auth = Authenticator("u", "p", cnonce=lambda: "c")
    auth.handle_challenge(['Digest realm="r", nonce="n", qop="auth", algorithm=MD5-sess'])
    header = auth.authorization("GET", "/")
    assert header is not None
    assert fields(header)["algorithm"] == "MD5-sess"


def test_quoted_strings_with_escapes_and_commas() -> None:
    (c,) = parse_challenges(['Digest realm="a \\"b\\", c", nonce="x,y", qop=auth'])
    assert c.params == {"realm": 'a "b", c', "nonce": "x,y", "qop": "auth"}


def test_an_overlong_parameter_skips_its_challenge_without_unescaping_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handed: list[int] = []
    real = auth._QUOTED_PAIR

    class Counting:
        def sub(self, repl: str, text: str) -> str:
            handed.append(len(text))
            return real.sub(repl, text)

    monkeypatch.setattr(auth, "_QUOTED_PAIR", Counting())
    overlong = '"' + "\\a" * MAX_PARAM_VALUE + '"'  # 2 KiB of quoted-pairs
    at_limit = '"' + "a" * MAX_PARAM_VALUE + '"'
    values = [
        f'Digest realm="cam", nonce={overlong}, qop="auth"',
        f'Digest realm="cam", nonce={at_limit}, qop="auth"',
        'Basic realm="cam"',
    ]
    assert [(c.scheme, len(c.params.get("nonce", ""))) for c in parse_challenges(values)] == [
        ("digest", MAX_PARAM_VALUE),
        ("basic", 0),
    ]
    assert max(handed) <= MAX_PARAM_VALUE
    alone = Authenticator("root", "pw")
    assert alone.handle_challenge(values[:1]) is ChallengeResult.UNSUPPORTED


def test_challenges_read_from_one_response_are_bounded() -> None:
    values = ['Digest realm="cam", nonce="n", qop="auth", ' * 100]
    assert len(parse_challenges(values)) == MAX_CHALLENGES
    assert len(parse_challenges(['Basic realm="x"'] * 100)) == MAX_CHALLENGES
