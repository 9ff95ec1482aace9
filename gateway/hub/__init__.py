"""The hub: each camera's media (sources, renditions, upstream rate) and its fan-out."""

from gateway.hub.budget import Demand, Priority, allocate
from gateway.hub.camera import CameraMedia, MediaSettings, SpecTable, Upstream
from gateway.hub.cursor import MIN_MAXLAG_NS, Cursor
from gateway.hub.delivery import Delivery
from gateway.hub.egress import EgressBudget
from gateway.hub.rate import IntervalEstimator, RateSelector, pts_ns, received_ns
from gateway.hub.renditions import (
    CapacityExceededError,
    Rendition,
    RenditionHandle,
    RenditionKey,
    Renditions,
    RenditionSpec,
)
from gateway.hub.ring import Ring, every_frame, has_cut
from gateway.hub.stream import Stream, StreamFullError
from gateway.hub.subscription import Subscription
from gateway.hub.tally import LAG_BUCKETS_S, ClientTally
from gateway.hub.upstream import UpstreamRate

__all__ = [
    "LAG_BUCKETS_S",
    "MIN_MAXLAG_NS",
    "CameraMedia",
    "CapacityExceededError",
    "ClientTally",
    "Cursor",
    "Delivery",
    "Demand",
    "EgressBudget",
    "IntervalEstimator",
    "MediaSettings",
    "Priority",
    "RateSelector",
    "Rendition",
    "RenditionHandle",
    "RenditionKey",
    "RenditionSpec",
    "Renditions",
    "Ring",
    "SpecTable",
    "Stream",
    "StreamFullError",
    "Subscription",
    "Upstream",
    "UpstreamRate",
    "allocate",
    "every_frame",
    "has_cut",
    "pts_ns",
    "received_ns",
]
