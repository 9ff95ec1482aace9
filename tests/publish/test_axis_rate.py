"""Rate accuracy from 25 and 30 fps cameras, and the egress budget scenario."""

from __future__ import annotations

import asyncio
import statistics

from gateway.publish.axis import FANOUTS

from .axis_client import (
    Gateway,
    MjpegClient,
    Part,
    assert_evenly_spaced,
    camera_toml,
    gateway,
    log_source,
    mjpeg,
)

RATES = (1, 2, 5, 10, 15, 25)
#: Seconds of frames counted per client (after a settling second).
WINDOW = 10.0


def measured_fps(parts: list[Part]) -> float:
    """Return frames per second of camera time (the simulator's capture clock)."""
    times = [p.sim[1] for p in parts]
    return (len(times) - 1) * 1e9 / (times[-1] - times[0])


async def run_clients(gw: Gateway, targets: list[str], seconds: float) -> list[MjpegClient]:
    """Run one client per target concurrently for ``seconds``; drop the first second."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds + 1.0
    clients = await asyncio.gather(
        *(mjpeg(gw.port, t, until=until, keep_payload=False) for t in targets)
    )
    for client in clients:
        start = client.parts[0].arrived + 1.0
        client.parts = [p for p in client.parts if p.arrived >= start]
    return list(clients)


async def check_source(fps: int) -> list[str]:
    """Run req_fps/des_fps clients at every rate against a ``fps`` camera; return rows."""
    async with gateway(camera_toml(fps=fps)) as gw:
        await gw.live()
        source = log_source(gw)
        targets = [
            f"/axis-cgi/mjpg/video.cgi?{k}={r}" for k in ("req_fps", "des_fps") for r in RATES
        ]
        # One full-rate client keeps the upstream at the camera's rate (DESIGN §6).
        targets.append("/axis-cgi/mjpg/video.cgi?deltatime=1")
        clients = await run_clients(gw, targets, WINDOW)
        assert gw.sim_requests() == 1
        rows = []
        for target, client in zip(targets, clients, strict=True):
            numbers = [p.sim[0] for p in client.parts]
            # No client can get more than the camera sent (a loaded machine's simulator
            # skips the ticks it is late for): the source rate over the client's window.
            sent = source.fps(numbers[0], numbers[-1])
            asked = float(target.rsplit("=", 1)[1]) if "fps" in target else None
            want = sent if asked is None else min(asked, sent)
            got = measured_fps(client.parts)
            rows.append(f"{fps} fps source {target.split('?')[1]}: {got:.3f} fps")
            assert abs(got - want) <= 0.05 * want, rows[-1]
            if asked is None:
                # The source rate is every frame: the spacing is the camera's own.
                assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), target
            else:
                assert_evenly_spaced(numbers, source, asked, round(1e9 / fps))
        return rows


async def test_rate_accuracy_from_25_and_30_fps_sources() -> None:
    rows = await asyncio.gather(check_source(25), check_source(30))
    print("\n".join(rows[0] + rows[1]))  # noqa: T201


async def test_budget_keeps_req_fps_and_shares_the_rest_evenly() -> None:
    # About one full-rate stream of the simulator's 640x480 frames (~14 kB).
    toml = "[limits]\nmax_egress_mbps = 2.8\n" + camera_toml()
    async with gateway(toml) as gw:
        await gw.live()
        targets = ["/mjpg/video.mjpg?req_fps=10"] + ["/mjpg/video.mjpg?des_fps=25"] * 3
        clients = await run_clients(gw, targets, 8.0)
        rates = [measured_fps(c.parts) for c in clients]
        seconds = [(c.parts[-1].sim[1] - c.parts[0].sim[1]) / 1e9 for c in clients]
        egress = sum(
            sum(p.size for p in c.parts[1:]) / s for c, s in zip(clients, seconds, strict=True)
        )
        budget = 2.8e6 / 8
        frame_bytes = gw.app[FANOUTS]["cam"].source.frame_bytes
        print(  # noqa: T201
            f"budget {budget / frame_bytes:.1f} frames/s; egress {egress / budget:.1%} of it; "
            f"req_fps=10: {rates[0]:.2f}; des_fps=25: {', '.join(f'{r:.2f}' for r in rates[1:])}"
        )
        assert abs(rates[0] - 10) <= 0.5
        for rate in rates[1:]:
            assert 1 < rate < 25 * 0.8
        assert max(rates[1:]) - min(rates[1:]) <= 0.1 * statistics.mean(rates[1:])
        assert 0.75 * budget <= egress <= 1.1 * budget
