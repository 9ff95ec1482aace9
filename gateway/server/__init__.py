"""The HTTP server: connection caps, request deadlines, quiet errors, bind before start."""

from gateway.server.listen import (
    CONNECTIONS,
    FileLimit,
    Listening,
    connection_cap,
    raise_open_file_limit,
    serving,
)
from gateway.server.protocol import (
    BAD_REQUESTS,
    SERVER_NAME,
    Guard,
    GuardedHandler,
    bad_request_phrase,
)
from gateway.server.report import Tally, TokenBucket
from gateway.server.table import Admission, ConnectionTable, Phase, Reason

__all__ = [
    "BAD_REQUESTS",
    "CONNECTIONS",
    "SERVER_NAME",
    "Admission",
    "ConnectionTable",
    "FileLimit",
    "Guard",
    "GuardedHandler",
    "Listening",
    "Phase",
    "Reason",
    "Tally",
    "TokenBucket",
    "bad_request_phrase",
    "connection_cap",
    "raise_open_file_limit",
    "serving",
]
