"""The user-facing docs list every table entry the code has."""

from __future__ import annotations

from pathlib import Path

from gateway.sim.options import QUIRK_HELP, Quirk

ROOT = Path(__file__).resolve().parents[2]


def test_simulator_doc_lists_every_quirk_with_its_help() -> None:
    doc = (ROOT / "docs" / "simulator.md").read_text()
    for quirk in Quirk:
        assert f"| `{quirk.value}` | {QUIRK_HELP[quirk]} |" in doc


def test_readme_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    run = "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/gateway serve"
    test = (
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && "
        ".venv/bin/python -m pytest"
    )
    assert readme.index(run) < readme.index(test) < readme.index("## A short tour")
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci
