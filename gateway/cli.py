"""Command line: ``gateway serve | sim | probe | check-config | token``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from gateway import __version__
from gateway.config import (
    GatewayConfig,
    default_config_text,
    load_config,
    parse_config,
    parse_listen,
    parse_resolution,
    read_config_text,
)
from gateway.config_check import check_config, config_warnings
from gateway.errors import ConfigError, GatewayError

log = logging.getLogger("gateway")


def _listen(text: str) -> tuple[str, int]:
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _size(text: str) -> tuple[int, int]:
    try:
        return parse_resolution(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _user(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError("must be USER:PASSWORD")
    return name, password


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway (default: one simulated camera)")
    serve.add_argument("--config", metavar="PATH", help="TOML configuration (default: embedded)")
    serve.add_argument(
        "--listen", type=_listen, metavar="HOST:PORT", help="override [server] listen"
    )

    sim = sub.add_parser("sim", help="run the Axis camera simulator on its own")
    sim.add_argument("--listen", type=_listen, default=("127.0.0.1", 8081), metavar="HOST:PORT")
    sim.add_argument("--fps", type=float, default=25.0)
    sim.add_argument("--size", type=_size, default=(640, 480), metavar="WxH")
    sim.add_argument(
        "--quirk",
        action="append",
        default=[],
        metavar="NAME",
        help="dialect or fault to switch on (repeatable); see docs/simulator.md",
    )
    sim.add_argument("--auth", choices=["basic", "digest"])
    sim.add_argument("--user", type=_user, metavar="USER:PASSWORD")
    sim.add_argument("--channels", type=int, default=4)
    sim.add_argument("--mpeg2-format", choices=["es", "ps", "ts"], default="es")
    sim.add_argument(
        "--mpeg2-open-gop", action="store_true", help="MPEG-2 open GOPs (no closed_gop flag)"
    )
    sim.add_argument("--audio-codec", choices=["g726", "g726le", "pcmu"], default="g726")

    probe = sub.add_parser("probe", help="report what a camera serves")
    probe.add_argument("url", help="camera base URL or stream URL (credentials may be in it)")
    probe.add_argument("--timeout", type=float, default=10.0)

    check = sub.add_parser(
        "check-config",
        help="validate a configuration file: every error, then warnings (exit 1 if invalid)",
    )
    check.add_argument("path")

    token = sub.add_parser("token", help="issue a signed viewing token ([tokens] key)")
    token.add_argument("--config", metavar="PATH", required=True, help="TOML configuration")
    token.add_argument(
        "--camera", action="append", required=True, metavar="NAME", help="repeatable"
    )
    token.add_argument("--ttl", type=int, metavar="SECONDS", help="default: [tokens] default_ttl")
    return parser


def _run(coro: Coroutine[Any, Any, int]) -> int:
    """Run ``coro`` on uvloop where available, ending cleanly on SIGINT/SIGTERM."""
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, absent on some platforms

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        loop_factory = None

    async def supervised() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, task.cancel)
        try:
            return await coro
        except asyncio.CancelledError:
            return 0

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(supervised())


async def _serve(config: GatewayConfig) -> int:
    from gateway.app import create_app  # noqa: PLC0415 - keep `check-config` light
    from gateway.server import serving  # noqa: PLC0415

    # The socket is bound before any camera starts: a busy port is one line, no upstream.
    async with serving(create_app(config), config.server) as listening:
        log.info("gateway %s serving on %s", __version__, listening.url)
        try:
            await asyncio.Event().wait()
        finally:
            log.info("shutting down")
    return 0


async def _sim(args: argparse.Namespace) -> int:
    from gateway.sim import SimOptions, run_sim  # noqa: PLC0415

    if (args.auth is None) != (args.user is None):
        raise GatewayError("--auth and --user go together")
    options = SimOptions(
        fps=args.fps,
        size=args.size,
        quirks=frozenset(args.quirk),
        auth=args.auth,
        user=args.user,
        channels=args.channels,
        mpeg2_format=args.mpeg2_format,
        mpeg2_open_gop=args.mpeg2_open_gop,
        audio_codec=args.audio_codec,
    )
    await run_sim(options, *args.listen)
    return 0


async def _probe(args: argparse.Namespace) -> int:
    from gateway.ingest import probe  # noqa: PLC0415

    report = await probe(args.url, timeout=args.timeout)
    sys.stdout.write(report.render() + "\n")
    return 0 if report.ok else 1


def _config_for_serve(args: argparse.Namespace) -> GatewayConfig:
    config = load_config(args.config) if args.config else parse_config(default_config_text())
    if args.listen:
        host, port = args.listen
        server = dataclasses.replace(config.server, host=host, port=port)
        config = dataclasses.replace(config, server=server)
    for warning in config_warnings(config):
        log.warning("config: %s", warning)
    return config


def _check_config(path: str) -> int:
    """Print every problem of the configuration at ``path``, one line each; 1 if invalid."""
    try:
        report = check_config(read_config_text(path))
    except ConfigError as exc:  # unreadable
        sys.stdout.write(f"error: {exc}\n")
        return 1
    lines = [f"error: {line}" for line in report.errors]
    lines += [f"warning: {line}" for line in report.warnings]
    if report.config is None:
        lines.append(f"{path}: invalid: {_count(len(report.errors), 'error')}")
    else:
        cameras = report.config.cameras
        names = ", ".join(c.name for c in cameras)
        warned = _count(len(report.warnings), "warning")
        lines.append(f"{path}: ok ({_count(len(cameras), 'camera')}: {names}), {warned}")
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0 if report.config is not None else 1


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from gateway.ingest.redact import install_redaction  # noqa: PLC0415

    install_redaction()
    try:
        if args.command == "check-config":
            return _check_config(args.path)
        if args.command == "serve":
            return _run(_serve(_config_for_serve(args)))
        if args.command == "token":
            from gateway.access.tokens import issue_for  # noqa: PLC0415

            token = issue_for(load_config(args.config), args.camera, args.ttl, now=time.time())
            sys.stdout.write(token + "\n")
            return 0
        if args.command == "sim":
            return _run(_sim(args))
        return _run(_probe(args))
    except GatewayError as exc:
        from gateway.ingest import redact  # noqa: PLC0415

        for line in str(exc).splitlines():
            sys.stderr.write(f"gateway: error: {redact(line)}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"gateway: error: {exc.strerror or exc}\n")
        return 1
