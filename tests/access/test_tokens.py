"""gateway.access.tokens: issue, verify, expiry, tamper, bounds."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.access.tokens import (
    MAX_TOKEN_CHARS,
    PREFIX,
    ExpiredToken,
    InvalidToken,
    Scope,
    Token,
    TokenSigner,
    issue_for,
)
from gateway.config import MAX_TOKEN_TTL, parse_config
from gateway.errors import ConfigError, LocalProtocolError, RemoteProtocolError

KEY = b"0123456789abcdef-test-key"
NOW = 1_700_000_000.0


def test_a_token_grants_its_cameras_until_it_expires() -> None:
    signer = TokenSigner(KEY)
    token = signer.issue(["front", "yard", "front"], now=NOW, ttl=60, issuer="admin")
    assert token.startswith(PREFIX)
    granted = signer.verify(token, now=NOW + 59.999)
    assert granted == Token(("front", "yard"), int(NOW) + 60, Scope.VIEW, "admin")
    with pytest.raises(ExpiredToken, match="token expired"):
        signer.verify(token, now=NOW + 60)
    # Expired is a kind of invalid, and bad input from the peer.
    assert issubclass(ExpiredToken, InvalidToken)
    assert issubclass(InvalidToken, RemoteProtocolError)


def test_the_payload_is_compact_json_readable_by_anyone() -> None:
    token = TokenSigner(KEY).issue(["cam"], now=NOW, ttl=3600)
    payload = token.removeprefix(PREFIX).split(".")[0]
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert decoded == {"c": ["cam"], "e": int(NOW) + 3600, "s": "view"}
    assert len(token) < 120


def test_every_flipped_character_is_refused() -> None:
    signer = TokenSigner(KEY)
    token = signer.issue(["cam"], now=NOW, ttl=60)
    for i, char in enumerate(token):
        flipped = "A" if char != "A" else "B"
        tampered = token[:i] + flipped + token[i + 1 :]
        with pytest.raises(InvalidToken) as caught:
            signer.verify(tampered, now=NOW)
        assert not isinstance(caught.value, ExpiredToken)


def test_another_key_or_a_forged_payload_is_refused() -> None:
    token = TokenSigner(KEY).issue(["cam"], now=NOW, ttl=60)
    with pytest.raises(InvalidToken, match="signature"):
        TokenSigner(b"another key of some length").verify(token, now=NOW)
    # Longer-lived and for every camera: a payload of the attacker's, the old signature.
    forged = {"c": ["cam", "yard"], "e": int(NOW) + 10**6, "s": "view"}
    payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    signature = token.rsplit(".", 1)[1]
    with pytest.raises(InvalidToken, match="signature"):
        TokenSigner(KEY).verify(f"{PREFIX}{payload}.{signature}", now=NOW)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "gwt1.",
        "gwt1..",
        "gwt2.abc." + "A" * 43,
        "gwt1.abc",
        "gwt1.abc." + "A" * 42,
        "gwt1.ab+c." + "A" * 43,
        "gwt1.abc.def." + "A" * 43,
        "Basic dXNlcjpwdw==",
        "gwt1." + "A" * MAX_TOKEN_CHARS + "." + "A" * 43,
    ],
)
def test_malformed_tokens_are_refused_before_any_decoding(text: str) -> None:
    with pytest.raises(InvalidToken, match="malformed"):
        TokenSigner(KEY).verify(text, now=NOW)


def _signed(payload: bytes) -> str:
    """Return a token our key signs over an arbitrary payload (a key shared elsewhere)."""
    signer = TokenSigner(KEY)
    signed = PREFIX + base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    return f"{signed}.{signer._signature(signed)}"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "payload is not valid"),
        (b"[]", "payload is not valid"),
        (b'{"c": [], "e": 1800000000, "s": "view"}', "payload is not valid"),
        (b'{"c": "cam", "e": 1800000000, "s": "view"}', "payload is not valid"),
        (b'{"c": [1], "e": 1800000000, "s": "view"}', "payload is not valid"),
        (b'{"c": ["cam"], "e": "soon", "s": "view"}', "payload is not valid"),
        (b'{"c": ["cam"], "e": true, "s": "view"}', "payload is not valid"),
        (b'{"c": ["cam"], "e": 1800000000, "s": "view", "u": 7}', "payload is not valid"),
        (b'{"c": ["cam"], "e": 1800000000, "s": "view", "x": 1}', "payload is not valid"),
        (b'{"c": ["cam"], "e": 1800000000, "s": "admin"}', "scope is not known"),
        (b'{"c": ["cam"], "e": 1800000000}', "scope is not known"),
    ],
)
def test_signed_payloads_that_are_not_tokens_are_refused(payload: bytes, message: str) -> None:
    with pytest.raises(InvalidToken, match=message):
        TokenSigner(KEY).verify(_signed(payload), now=NOW)


@given(st.text(max_size=300))
def test_any_text_verifies_or_raises_invalid_token(text: str) -> None:
    try:
        TokenSigner(KEY).verify(text, now=NOW)
    except InvalidToken:
        pass


@pytest.mark.parametrize(
    ("cameras", "ttl"),
    [
        ([], 60),
        (["cam"], 0),
        (["cam"], -1),
        (["cam"], MAX_TOKEN_TTL + 1),
        ([f"c{i}" for i in range(65)], 60),
    ],
)
def test_issue_refuses_what_no_token_can_be(cameras: list[str], ttl: int) -> None:
    with pytest.raises(LocalProtocolError):
        TokenSigner(KEY).issue(cameras, now=NOW, ttl=ttl)


def test_issue_refuses_a_token_past_the_length_bound() -> None:
    with pytest.raises(LocalProtocolError, match="too long"):
        TokenSigner(KEY).issue([f"camera-{i:02d}-" + "x" * 40 for i in range(40)], now=NOW, ttl=1)


CONFIG = """
[tokens]
key = "0123456789abcdef0123"
default_ttl = 120
[[cameras]]
name = "front"
source = "sim"
[[cameras]]
name = "yard"
source = "sim"
"""


def test_issue_for_resolves_names_and_positions_with_the_default_ttl() -> None:
    config = parse_config(CONFIG, {})
    token = issue_for(config, ["2", "front"], None, now=NOW)
    granted = TokenSigner(b"0123456789abcdef0123").verify(token, now=NOW)
    assert granted.cameras == ("yard", "front")
    assert granted.expires == int(NOW) + 120
    assert granted.issuer is None


def test_issue_for_names_what_is_wrong() -> None:
    config = parse_config(CONFIG, {})
    with pytest.raises(ConfigError, match=r"--camera: no camera 'back' \(cameras: front, yard\)"):
        issue_for(config, ["back"], None, now=NOW)
    with pytest.raises(ConfigError, match="--ttl must be from 1"):
        issue_for(config, ["front"], 0, now=NOW)
    keyless = parse_config(CONFIG.replace('key = "0123456789abcdef0123"\n', ""), {})
    with pytest.raises(ConfigError, match=r"no \[tokens\] key"):
        issue_for(keyless, ["front"], 60, now=NOW)
