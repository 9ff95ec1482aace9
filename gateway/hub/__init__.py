"""Fan-out hub: per camera stream newest frame, history, subscriptions and rate policy."""

from gateway.hub.budget import Demand, Priority, allocate
from gateway.hub.egress import EgressBudget
from gateway.hub.rate import IntervalEstimator, RateSelector, pts_ns, received_ns
from gateway.hub.stream import Stream, StreamFullError
from gateway.hub.subscription import Subscription

__all__ = [
    "Demand",
    "EgressBudget",
    "IntervalEstimator",
    "Priority",
    "RateSelector",
    "Stream",
    "StreamFullError",
    "Subscription",
    "allocate",
    "pts_ns",
    "received_ns",
]
