"""The ``[server]`` keys: defaults, values, and errors that name the key."""

from __future__ import annotations

import pytest

from gateway.cli import _config_for_serve, build_parser
from gateway.config import ServerConfig, parse_config
from gateway.errors import ConfigError

CAM = '[[cameras]]\nname = "c"\nsource = "sim"\n'


def test_defaults_are_design_section_4() -> None:
    server = parse_config(CAM, {}).server
    assert server == ServerConfig(
        host="127.0.0.1",
        port=8080,
        header_timeout=10.0,
        keepalive_timeout=15.0,
        max_connections=4000,
        max_connections_per_address=500,
    )


def test_every_key_is_read() -> None:
    text = (
        '[server]\nlisten = "0.0.0.0:9000"\nheader_timeout = 2\nkeepalive_timeout = 3.5\n'
        "max_connections = 100\nmax_connections_per_address = 10\n" + CAM
    )
    server = parse_config(text, {}).server
    assert server == ServerConfig("0.0.0.0", 9000, 2.0, 3.5, 100, 10)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("header_timeout = 0", "server.header_timeout: must be a number greater than 0"),
        ("keepalive_timeout = -1", "server.keepalive_timeout: must be a number greater than 0"),
        ("header_timeout = 3601", "server.header_timeout: must be at most 3600 seconds"),
        ("keepalive_timeout = 7200", "server.keepalive_timeout: must be at most 3600 seconds"),
        ('header_timeout = "10"', "server.header_timeout: must be a number greater than 0"),
        ("max_connections = 0", "server.max_connections: must be a positive integer"),
        ("max_connections = 1.5", "server.max_connections: must be a positive integer"),
        (
            "max_connections_per_address = 0",
            "server.max_connections_per_address: must be a positive integer",
        ),
        (
            "max_connections = 10\nmax_connections_per_address = 11",
            "server.max_connections_per_address: must not exceed max_connections",
        ),
        ("header_timout = 5", "server.header_timout: unknown key; did you mean header_timeout?"),
    ],
)
def test_bad_values_name_the_key(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"[server]\n{line}\n" + CAM, {})
    assert str(info.value) == message


def test_listen_on_the_command_line_keeps_the_other_server_keys(tmp_path: object) -> None:
    from pathlib import Path  # noqa: PLC0415

    assert isinstance(tmp_path, Path)
    path = tmp_path / "g.toml"
    path.write_text("[server]\nheader_timeout = 2.0\nmax_connections = 50\n" + CAM)
    args = build_parser().parse_args(["serve", "--config", str(path), "--listen", "127.0.0.1:9999"])
    server = _config_for_serve(args).server
    assert (server.host, server.port, server.header_timeout, server.max_connections) == (
        "127.0.0.1",
        9999,
        2.0,
        50,
    )


def test_a_small_max_connections_lowers_the_per_address_default() -> None:
    server = parse_config("[server]\nmax_connections = 50\n" + CAM, {}).server
    assert server.max_connections_per_address == 50
