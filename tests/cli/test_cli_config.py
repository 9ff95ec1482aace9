"""``gateway check-config`` and argument errors: one clear line, never a traceback."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import _config_for_serve, build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


CAM = '[[cameras]]\nname = "c"\nsource = "sim"\n'


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    path = tmp_path / "g.toml"
    path.write_text(text)
    status = main(["check-config", str(path)])
    captured = capsys.readouterr()
    assert captured.err == ""
    return status, captured.out.replace(str(path), "g.toml").splitlines()


def test_check_config_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(ROOT / "config" / "gateway.toml")]) == 0
    assert capsys.readouterr().out.endswith("gateway.toml: ok (1 camera: demo), 0 warnings\n")


def test_check_config_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = CAM + '[[cameras]]\nname = "b"\nsource = "sim"\nfps = 0\n'
    assert check(tmp_path, text, capsys) == (
        1,
        ["error: cameras[2].fps: must be a positive integer", "g.toml: invalid: 1 error"],
    )


def test_check_config_reports_every_error_unknown_keys_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        '[servr]\nlisten = "0.0.0.0:8080"\n[hls]\npart_seconds = 2.0\n'
        '[[cameras]]\nname = "c"\nsource = "http://10.0.0.1"\nusernme = "root"\n'
        'password = "pw"\nfps = 0\n'
    )
    assert check(tmp_path, text, capsys) == (
        1,
        [
            "error: servr: unknown table; did you mean [server]?",
            "error: cameras[1].usernme: unknown key; did you mean username?",
            "error: hls.part_seconds: must not exceed segment_seconds",
            "error: cameras[1].fps: must be a positive integer",
            "g.toml: invalid: 4 errors",
        ],
    )


def test_check_config_warnings_keep_exit_status_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = '[server]\nlisten = "0.0.0.0:8080"\n[webrtc]\nice_servers = ["turn:t"]\n' + CAM
    assert check(tmp_path, text, capsys) == (
        0,
        [
            "warning: server.listen: listening on 0.0.0.0 without [[users]]: only loopback "
            "clients are admitted; add [[users]] for the others",
            "warning: webrtc.ice_servers[1]: a TURN server without username and credential: "
            "TURN servers refuse unauthenticated clients",
            "g.toml: ok (1 camera: c), 2 warnings",
        ],
    )


def test_check_config_unreadable_file_is_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(tmp_path / "nope.toml")]) == 1
    assert capsys.readouterr().out == (
        f"error: {tmp_path / 'nope.toml'}: cannot read: No such file or directory\n"
    )


def test_check_config_entry_point_exit_statuses(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text('[server]\nlisten = "0.0.0.0:8080"\n' + CAM)
    bad.write_text('[servr]\nlisten = "0.0.0.0:8080"\n')
    result = run("check-config", str(good))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("warning: server.listen: listening on 0.0.0.0")
    result = run("check-config", str(bad))
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout.splitlines() == [
        "error: servr: unknown table; did you mean [server]?",
        "error: cameras: at least one [[cameras]] entry is required",
        f"{bad}: invalid: 2 errors",
    ]


def test_check_config_missing_secrets_one_line_each_without_traceback() -> None:
    result = run("check-config", str(ROOT / "config" / "example-axis.toml"), env={})
    assert result.returncode == 1
    assert result.stdout.splitlines()[:-1] == [
        "error: users[1].password: environment variable OPERATOR_PASSWORD is not set",
        "error: cameras[1].password: environment variable CAM_PASSWORD is not set",
        "error: cameras[2].password: environment variable CAM_PASSWORD is not set",
    ]
    assert "Traceback" not in result.stdout + result.stderr


def test_serve_with_an_invalid_config_says_every_error_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "g.toml"
    path.write_text(CAM + "fps = 0\nchannel = 0\n")
    assert main(["serve", "--config", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"gateway: error: {path}: cameras[1].channel: must be a positive integer",
        f"gateway: error: {path}: cameras[1].fps: must be a positive integer",
    ]


def test_serve_logs_the_warnings_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "g.toml"
    path.write_text(CAM)
    args = build_parser().parse_args(["serve", "--config", str(path), "--listen", "0.0.0.0:0"])
    with caplog.at_level(logging.WARNING, logger="gateway"):
        config = _config_for_serve(args)
    assert config.server.host == "0.0.0.0"
    assert [r.getMessage() for r in caplog.records] == [
        "config: server.listen: listening on 0.0.0.0 without [[users]]: only loopback "
        "clients are admitted; add [[users]] for the others"
    ]


def test_bad_listen_argument_is_a_usage_error() -> None:
    result = run("serve", "--listen", "nowhere")
    assert result.returncode == 2
    assert "must be HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_sim_auth_needs_user(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--auth", "basic"]) == 2
    assert "--auth and --user go together" in capsys.readouterr().err
