"""Axis (VAPIX) camera simulator: MJPEG, snapshots, MPEG-2 and G.726 audio with quirks.

Media is encoded once per channel and variant and shared by every client, so the
simulator doubles as the load source for benchmarks.
"""

from gateway.sim.options import QUIRK_HELP, Quirk, SimOptions
from gateway.sim.server import SimServer, create_sim_app, run_sim

__all__ = ["QUIRK_HELP", "Quirk", "SimOptions", "SimServer", "create_sim_app", "run_sim"]
