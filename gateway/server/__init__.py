"""The HTTP server: connection caps, request deadlines, quiet errors, bind before start."""

from gateway.server.report import Tally, TokenBucket
from gateway.server.table import Admission, ConnectionTable, Phase, Reason

__all__ = ["Admission", "ConnectionTable", "Phase", "Reason", "Tally", "TokenBucket"]
