"""The configuration report: every error in one run, unknown keys first, then warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config, parse_config
from gateway.config_check import WARNINGS, check_config, config_warnings
from gateway.config_table import Reader
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CAM = '[[cameras]]\nname = "c"\nsource = "http://10.0.0.1"\n'
SIM = '[[cameras]]\nname = "s"\nsource = "sim"\n'


def errors_of(text: str, env: dict[str, str] | None = None) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env or {})
    assert str(info.value) == "\n".join(info.value.messages)
    return info.value.messages


def test_every_error_is_reported_in_one_run() -> None:
    text = (
        '[server]\nlisten = "8080"\n'
        "[limits]\nmax_egress_mbps = -1\nclient_buffer_bytes = 0\n"
        '[hls]\nsegment_seconds = 0\n[[users]]\nname = "a"\n'
        '[[cameras]]\nname = "12"\nsource = "ftp://x"\nfps = 500\nchannel = 0\n'
        'h264 = {preset = "fastest", max_size = "8x8"}\n'
        '[[cameras]]\nname = "d"\nsource = "sim"\nmjpeg = 1\nrate_param = "speed"\n'
    )
    assert errors_of(text) == (
        "server.listen: must be HOST:PORT, e.g. 127.0.0.1:8080",
        "limits.max_egress_mbps: must be a number at least 0",
        "limits.client_buffer_bytes: must be a positive integer",
        "hls.segment_seconds: must be a number greater than 0",
        "users[1].password: is required",
        "cameras[1].name: is required: letters, digits, '.', '_' or '-', not only digits",
        'cameras[1].source: must be "sim" or an http:// or https:// camera URL',
        "cameras[1].channel: must be a positive integer",
        "cameras[1].fps: must be at most 120",
        "cameras[1].h264.preset: must be one of ultrafast, superfast, veryfast, faster, "
        "fast, medium, slow, slower, veryslow",
        "cameras[1].h264.max_size: must be at least 16x16",
        "cameras[2].mjpeg: must be true or false",
        "cameras[2].rate_param: must be one of 'fps', 'req_fps', 'des_fps'",
    )


def test_misspelt_username_is_the_first_line_not_a_missing_username() -> None:
    text = CAM + 'usernme = "root"\npassword = "pw"\n'
    assert errors_of(text) == ("cameras[1].usernme: unknown key; did you mean username?",)


def test_misspelt_server_table_comes_first_with_its_suggestion() -> None:
    text = '[servr]\nlisten = "0.0.0.0:8080"\n' + CAM
    assert errors_of(text) == ("servr: unknown table; did you mean [server]?",)
    # Without cameras that is an error of its own, reported after the unknown table.
    assert errors_of('[servr]\nlisten = "0.0.0.0:8080"\n') == (
        "servr: unknown table; did you mean [server]?",
        "cameras: at least one [[cameras]] entry is required",
    )


def test_unknown_keys_come_before_the_errors_found_earlier() -> None:
    text = CAM + "fps = 0\nfsp = 3\n[limits]\nmax_clients = 3\n"
    assert errors_of(text) == (
        "limits.max_clients: unknown key; did you mean max_clients_per_camera?",
        "cameras[1].fsp: unknown key; did you mean fps?",
        "cameras[1].fps: must be a positive integer",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A misspelt [[cameras]]: "at least one camera" would only repeat it.
        ('[[camera]]\nname = "c"\nsource = "sim"\n', "camera: unknown table; did you mean"),
        # Streams all off only because mpeg2 is misspelt.
        (CAM + "mjpeg = false\nmpg2 = true\n", "cameras[1].mpg2: unknown key; did you mean"),
        # video_source = "mpeg2" needs mpeg2, whose own value is the problem.
        (SIM + 'mpeg2 = "yes"\nvideo_source = "mpeg2"\n', "cameras[1].mpeg2: must be true"),
        # The simulator-only key on a camera whose source is itself wrong.
        (
            '[[cameras]]\nname = "c"\nsource = "x"\nsim_mpeg2_format = "ps"\n',
            "cameras[1].source: must be",
        ),
        (CAM + "sourse = 1\n", "cameras[1].sourse: unknown key; did you mean source?"),
        (CAM.replace("name", "nmae"), "cameras[1].nmae: unknown key; did you mean name?"),
        ('[[users]]\nname = "a"\npasword = "b"\n' + CAM, "users[1].pasword: unknown key"),
        # A value of the wrong type is reported once, not again as missing.
        ('[[users]]\nname = "a"\npassword = 3\n' + CAM, "users[1].password: must be a string"),
    ],
)
def test_consequences_of_an_earlier_error_are_left_out(text: str, expected: str) -> None:
    (line,) = errors_of(text)
    assert line.startswith(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A key after [cameras.h264] lands in h264: say where it belongs.
        (
            CAM + "[cameras.h264]\npreset = 'fast'\nfps = 10\n",
            "cameras[1].h264.fps: unknown key; fps belongs in [[cameras]], above [cameras.h264]",
        ),
        (
            CAM + 'listen = "0.0.0.0:80"\n',
            "cameras[1].listen: unknown key; listen belongs in [server]",
        ),
        (
            'listen = "0.0.0.0:80"\n' + CAM,
            "listen: unknown key; listen belongs in [server]",
        ),
        (
            'name = "x"\n[[users]]\nname = "a"\npassword = "b"\n' + CAM,
            "name: unknown key; name belongs in [[users]] or [[cameras]]",
        ),
        ("[server]\nmax_sessions = 3\n" + CAM, "server.max_sessions: unknown key; max_sessions"),
        ("[hls]\nidle = 3\n" + CAM, "hls.idle: unknown key; did you mean idle_seconds?"),
        (CAM + "[cameras.h246]\n", "cameras[1].h246: unknown table; did you mean [cameras.h264]?"),
        ("[[hls]]\n" + CAM, "hls: must be a table"),
        ("bogus = 1\n" + CAM, "bogus: unknown key"),
        (CAM + "xyzzy = 1\n", "cameras[1].xyzzy: unknown key"),
    ],
)
def test_unknown_keys_suggest_the_closest_known_key_or_its_table(text: str, expected: str) -> None:
    assert errors_of(text)[0].startswith(expected)
    if expected.endswith("unknown key"):
        assert errors_of(text)[0] == expected


def test_missing_environment_variables_are_all_named() -> None:
    text = (
        '[[users]]\nname = "a"\npassword = "${A_PW}"\n'
        + CAM
        + 'username = "root"\npassword = "${CAM_PW}"\n'
    )
    assert errors_of(text) == (
        "users[1].password: environment variable A_PW is not set",
        "cameras[1].password: environment variable CAM_PW is not set",
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('"http://stun.example"', "webrtc.ice_servers[1]: 'http://stun.example' is not stun:"),
        ('"stun:s:3478?transport=udp"', "webrtc.ice_servers[1]: 'stun:s:3478?transport=udp'"),
        ('"turn:t:99999"', "webrtc.ice_servers[1]: 'turn:t:99999' is not"),
        ('{urls = ["turn:t", "turn:"]}', "webrtc.ice_servers[1].urls: 'turn:' is not"),
        ("{urls = []}", "webrtc.ice_servers[1].urls: must be a URL string or a list of them"),
        ('{urls = "stun:s", user = "u"}', "webrtc.ice_servers[1].user: unknown key; did you"),
    ],
)
def test_ice_server_urls_are_checked(entry: str, message: str) -> None:
    (line,) = errors_of(f"[webrtc]\nice_servers = [{entry}]\n" + CAM)
    assert line.startswith(message)


def test_good_ice_server_urls_pass() -> None:
    urls = [
        "stun:stun.example.net",
        "stuns:[2001:db8::1]:5349",
        "turn:192.0.2.1:3478?transport=tcp",
        "turns:turn.example.net",
    ]
    text = f'[webrtc]\nice_servers = [{{urls = {urls!r}, username = "u", credential = "c"}}]\n'
    config = parse_config(text.replace("'", '"') + CAM, {})
    assert config.webrtc.ice_servers[0].urls == tuple(urls)


def test_duplicate_names_of_users_and_cameras() -> None:
    user = '[[users]]\nname = "a"\npassword = "b"\n'
    assert errors_of(user + user + CAM + CAM) == (
        "users[2].name: duplicate user name 'a'",
        "cameras[2].name: duplicate camera name 'c'",
    )


def test_load_config_prefixes_every_line_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text(CAM + "fps = 0\nchannel = 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.messages == (
        f"{path}: cameras[1].channel: must be a positive integer",
        f"{path}: cameras[1].fps: must be a positive integer",
    )
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)


def test_a_check_that_raises_keeps_what_was_found_before() -> None:
    reader = Reader({})
    root = reader.root({"a": 1, "b": 2, "zz": 3})
    root.int_("a", maximum=0)
    assert root.raw("b") == 2
    raised = root.error("b", "cannot go on")  # what a check would raise
    reader.add_raised(raised)
    reader.add_raised(ConfigError("c: from elsewhere"))
    root.finish()
    assert reader.errors() == (
        "zz: unknown key",
        "a: must be at most 0",
        "b: cannot go on",
        "c: from elsewhere",
    )


# Warnings: one test per entry of WARNINGS (the test ids name the check).

LISTEN_ANY = '[server]\nlisten = "0.0.0.0:8080"\n'
USER = '[[users]]\nname = "a"\npassword = "b"\n'


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        pytest.param(
            LISTEN_ANY + SIM,
            "server.listen: listening on 0.0.0.0 without [[users]]: only loopback clients "
            "are admitted; add [[users]] for the others",
            id="open_without_users",
        ),
        pytest.param(
            LISTEN_ANY + USER + '[webrtc]\naddresses = ["127.0.0.1"]\n' + SIM,
            "webrtc.addresses: only loopback addresses while listening on 0.0.0.0: "
            "WebRTC players on other hosts cannot connect",
            id="loopback_candidates",
        ),
        pytest.param(
            '[webrtc]\nannounce = "127.0.0.1"\naddresses = ["10.0.0.2"]\n' + SIM,
            "webrtc.announce: 127.0.0.1 is not an address remote players can reach",
            id="announce_unreachable",
        ),
        pytest.param(
            '[webrtc]\nannounce = "203.0.113.5"\n' + SIM,
            "webrtc.announce: without webrtc.addresses it is added to the candidates of "
            "every interface; list the address the NAT maps it to in addresses",
            id="announce_without_addresses",
        ),
        pytest.param(
            '[webrtc]\nice_servers = ["stun:s", {urls = "turn:t", username = "u"}]\n' + SIM,
            "webrtc.ice_servers[2]: a TURN server without username and credential: "
            "TURN servers refuse unauthenticated clients",
            id="turn_without_credentials",
        ),
        pytest.param(
            '[webrtc]\nice_servers = ["stun:a", "stun:b"]\n' + SIM,
            "webrtc.ice_servers[2]: stun:b is offered to players but not used by the "
            "gateway, which uses only the first STUN server",
            id="unused_ice_servers",
        ),
        pytest.param(
            LISTEN_ANY + USER + '[[cameras]]\nname = "c"\nsource = "http://localhost:8080"\n',
            "cameras[1].source: is this gateway's own listen address: the gateway would "
            "ingest itself",
            id="camera_is_the_gateway",
        ),
        pytest.param(
            CAM + 'username = "root"\n',
            "cameras[1].password: not set, but username is: the camera is asked as 'root' "
            "with an empty password",
            id="username_without_password",
        ),
    ],
)
def test_warnings(text: str, warning: str) -> None:
    report = check_config(text, {})
    assert report.errors == ()
    assert report.warnings == (warning,)


def test_every_warning_check_has_a_test() -> None:
    ids = {
        "open_without_users",
        "loopback_candidates",
        "announce",
        "turn_without_credentials",
        "unused_ice_servers",
        "camera_is_the_gateway",
        "username_without_password",
    }
    assert {check.__name__.lstrip("_") for check in WARNINGS} == ids


@pytest.mark.parametrize(
    "text",
    [
        LISTEN_ANY + USER + SIM,
        '[server]\nlisten = "127.0.0.1:8080"\n' + '[[cameras]]\nname = "c"\n'
        'source = "http://127.0.0.1:8081"\n',
        '[webrtc]\nannounce = "203.0.113.5"\naddresses = ["10.0.0.2"]\n'
        '[[webrtc.ice_servers]]\nurls = "turn:t"\nusername = "u"\ncredential = "c"\n' + SIM,
    ],
)
def test_no_warning_for_sound_settings(text: str) -> None:
    assert check_config(text, {}).warnings == ()


def test_shipped_configs_have_no_warnings() -> None:
    env = {"OPERATOR_PASSWORD": "op", "CAM_PASSWORD": "cam"}
    for name in ("gateway.toml", "example-axis.toml"):
        config = load_config(ROOT / "config" / name, env)
        assert config_warnings(config) == ()


def test_report_of_an_invalid_config_has_no_config_and_no_warnings() -> None:
    report = check_config(LISTEN_ANY + CAM + "fps = 0\n", {})
    assert report.config is None
    assert report.errors == ("cameras[1].fps: must be a positive integer",)
    assert report.warnings == ()
