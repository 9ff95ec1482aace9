"""``gateway check-config`` and argument errors: one clear line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main

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


def test_check_config_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(ROOT / "config" / "gateway.toml")]) == 0
    assert capsys.readouterr().out.endswith("ok (1 cameras: demo)\n")


def test_check_config_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "g.toml"
    path.write_text(
        '[[cameras]]\nname = "a"\nsource = "sim"\n[[cameras]]\nname = "b"\n'
        'source = "sim"\nfps = 0\n'
    )
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"gateway: error: {path}: cameras[2].fps: must be a positive integer\n"


def test_check_config_missing_secret_is_one_line_without_traceback() -> None:
    result = run("check-config", str(ROOT / "config" / "example-axis.toml"), env={})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "environment variable OPERATOR_PASSWORD is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_listen_argument_is_a_usage_error() -> None:
    result = run("serve", "--listen", "nowhere")
    assert result.returncode == 2
    assert "must be HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_sim_auth_needs_user(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--auth", "basic"]) == 2
    assert "--auth and --user go together" in capsys.readouterr().err
