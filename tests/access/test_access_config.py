"""[[users]] cameras and [tokens]: parsing, validation, secrets; ``gateway token``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.access.tokens import TokenSigner
from gateway.cli import main
from gateway.config import TokensConfig, parse_config
from gateway.errors import ConfigError
from gateway.ingest.redact import RedactingFilter, Redactor, redact

CAMERAS = (
    '[[cameras]]\nname = "front"\nsource = "sim"\n[[cameras]]\nname = "yard"\nsource = "sim"\n'
)
KEY = "a-key-of-twenty-chars"


def test_user_cameras_and_tokens_parse() -> None:
    text = (
        '[tokens]\nkey = "${TOKEN_KEY}"\ndefault_ttl = 600\n'
        '[[users]]\nname = "v"\npassword = "pw"\ncameras = ["yard", "front", "yard"]\n'
        '[[users]]\nname = "a"\npassword = "pw2"\nrole = "admin"\n' + CAMERAS
    )
    config = parse_config(text, {"TOKEN_KEY": KEY})
    assert config.users[0].cameras == ("yard", "front")
    assert config.users[1].cameras is None
    assert config.tokens.key is not None
    assert config.tokens.key.value == KEY
    assert config.tokens.default_ttl == 600
    assert KEY not in repr(config)
    assert KEY in config.secrets()
    assert parse_config(CAMERAS, {}).tokens == TokensConfig(None, 3600)


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        (
            '[[users]]\nname = "v"\npassword = "pw"\ncameras = ["front", "back"]\n',
            r"users\[1\]\.cameras: unknown camera 'back' \(cameras: front, yard\)",
        ),
        (
            '[[users]]\nname = "v"\npassword = "pw"\ncameras = "front"\n',
            r"users\[1\]\.cameras: must be a list",
        ),
        (
            '[[users]]\nname = "v"\npassword = "pw"\ncameras = [1]\n',
            r"users\[1\]\.cameras: must be a list",
        ),
        (
            '[[users]]\nname = "v"\npassword = "pw"\ncameras = [""]\n',
            r"users\[1\]\.cameras: must be a list",
        ),
        (
            '[[users]]\nname = "v"\npassword = "pw"\n[[users]]\nname = "v"\npassword = "x"\n',
            r"users\[2\]\.name: duplicate user name 'v'",
        ),
        ('[tokens]\nkey = "short"\n', r"tokens\.key: must be at least 16 characters"),
        (f'[tokens]\nkey = "{KEY}"\ndefault_ttl = 0\n', r"tokens\.default_ttl: must be a positive"),
        (
            f'[tokens]\nkey = "{KEY}"\ndefault_ttl = 99999999\n',
            r"tokens\.default_ttl: must be at most",
        ),
        (f'[tokens]\nkey = "{KEY}"\nttl = 5\n', r"tokens\.ttl: unknown key"),
        ('[tokens]\nkey = "${NOPE}"\n', r"tokens\.key: environment variable NOPE is not set"),
    ],
)
def test_access_config_errors_name_the_key(snippet: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(snippet + CAMERAS, {})


def test_gateway_token_prints_a_token_for_the_cameras(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(f'[tokens]\nkey = "{KEY}"\n' + CAMERAS)
    assert main(["token", "--config", str(path), "--camera", "yard", "--ttl", "60"]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert err == ""
    assert out == token + "\n"
    granted = TokenSigner(KEY.encode()).verify(token, now=0)
    assert granted.cameras == ("yard",)
    assert main(["token", "--config", str(path), "--camera", "back"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "gateway: error: --camera: no camera 'back' (cameras: front, yard)\n"


def test_gateway_token_without_a_key_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(CAMERAS)
    assert main(["token", "--config", str(path), "--camera", "front"]) == 2
    assert capsys.readouterr().err == "gateway: error: tokens: no [tokens] key is configured\n"


TOKEN = (
    "gwt1.eyJjIjpbImZyb250Il0sImUiOjE3MDAwMDAwNjAsInMiOiJ2aWV3In0."
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
)


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        (f"GET /mp4/front?token={TOKEN} HTTP/1.1", "GET /mp4/front?token=*** HTTP/1.1"),
        (
            f"/hls/a/b/media.m3u8?_HLS_msn=3&token={TOKEN}&x=1",
            "/hls/a/b/media.m3u8?_HLS_msn=3&token=***&x=1",
        ),
        (f'"Referer: http://gw/?TOKEN={TOKEN}"', '"Referer: http://gw/?TOKEN=***"'),
        (f"Authorization: Bearer {TOKEN}", "Authorization: ***"),
        (f"token {TOKEN} seen", "token *** seen"),
        ("?token=", "?token="),
    ],
)
def test_tokens_are_redacted(text: str, clean: str) -> None:
    assert Redactor()(text) == clean
    assert redact(text) == clean


def test_the_log_filter_redacts_messages_arguments_and_tracebacks() -> None:
    record = logging.LogRecord(
        "aiohttp.access", logging.INFO, __file__, 1, "%s %s", ("GET", f"/?token={TOKEN}"), None
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "GET /?token=***"
    try:
        raise ValueError(f"bad {TOKEN}")
    except ValueError as exc:
        failed = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed", None, (type(exc), exc, exc.__traceback__)
        )
    RedactingFilter().filter(failed)
    formatted = logging.Formatter().format(failed)
    assert TOKEN not in formatted
    assert "ValueError: bad ***" in formatted
