"""Fan-out hub: per camera stream newest frame, rings of frames, subscriptions and rate policy."""

from gateway.hub.budget import Demand, Priority, allocate
from gateway.hub.cursor import MIN_MAXLAG_NS, Cursor
from gateway.hub.delivery import Delivery
from gateway.hub.egress import EgressBudget
from gateway.hub.rate import IntervalEstimator, RateSelector, pts_ns, received_ns
from gateway.hub.ring import Ring, every_frame, has_cut
from gateway.hub.stream import Stream, StreamFullError
from gateway.hub.subscription import Subscription

__all__ = [
    "MIN_MAXLAG_NS",
    "Cursor",
    "Delivery",
    "Demand",
    "EgressBudget",
    "IntervalEstimator",
    "Priority",
    "RateSelector",
    "Ring",
    "Stream",
    "StreamFullError",
    "Subscription",
    "allocate",
    "every_frame",
    "has_cut",
    "pts_ns",
    "received_ns",
]
