"""Pure egress budget allocator for ``max_egress_mbps`` (DESIGN §6).

Clients that asked with ``req_fps`` are served first; ``des_fps`` and unspecified
clients share what is left, max-min fair in frames per second (water-filling); no
client is allotted more than its target. If even the required clients do not fit,
they share the whole budget max-min fair and the desired clients get nothing.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.errors import LocalProtocolError


class Priority(enum.Enum):
    """How a client asked for its rate: ``req_fps`` or ``des_fps``/unspecified."""

    REQUIRED = "required"
    DESIRED = "desired"


@dataclass(frozen=True, slots=True)
class Demand:
    """One client's claim on the egress budget."""

    #: Served before every DESIRED demand.
    priority: Priority
    #: Frames per second the client asked for (its ceiling), >= 0.
    fps: float
    #: Estimated bytes per frame it would be sent, >= 0.
    frame_bytes: float


def allocate(demands: Sequence[Demand], budget: float | None) -> list[float]:
    """Return the allowed fps of each demand, in order, within ``budget`` bytes/s.

    ``budget`` None or 0 means unlimited: everyone gets its target.
    """
    for d in demands:
        if not (d.fps >= 0 and d.frame_bytes >= 0 and math.isfinite(d.fps + d.frame_bytes)):
            raise LocalProtocolError(f"invalid demand {d!r}")
    if budget is not None and (math.isnan(budget) or budget < 0):
        raise LocalProtocolError(f"invalid budget {budget!r}")
    out = [d.fps for d in demands]
    if not budget:
        return out
    required = [i for i, d in enumerate(demands) if d.priority is Priority.REQUIRED]
    desired = [i for i, d in enumerate(demands) if d.priority is Priority.DESIRED]
    need = math.fsum(demands[i].fps * demands[i].frame_bytes for i in required)
    if need <= budget:
        left = budget - need
        _water_fill(demands, desired, left, out)
    else:
        _water_fill(demands, required, budget, out)
        for i in desired:
            out[i] = 0.0
    return out


def _water_fill(
    demands: Sequence[Demand], members: list[int], budget: float, out: list[float]
) -> None:
    """Share ``budget`` bytes/s among ``members`` max-min fair in fps, capped at targets."""
    # Free riders (zero-size frames) cost nothing: they always get their target.
    paying = [i for i in members if demands[i].frame_bytes > 0]
    paying.sort(key=lambda i: (demands[i].fps, i))
    weight = math.fsum(demands[i].frame_bytes for i in paying)
    left = budget
    for n, i in enumerate(paying):
        d = demands[i]
        level = left / weight if weight > 0 else 0.0
        if d.fps <= level:
            out[i] = d.fps
            left = max(0.0, left - d.fps * d.frame_bytes)
            weight -= d.frame_bytes
            continue
        # Everyone from here on has a target above the water level: all get the level.
        # Rounding down by one ulp keeps the sum within the budget.
        level = math.nextafter(level, 0.0)
        for j in paying[n:]:
            out[j] = level
        return
