"""Camera ingest: upstream HTTP connections, auth, reconnect and stall policy, probing."""

from gateway.ingest.kinds import stream_path
from gateway.ingest.probe import EndpointReport, ProbeReport, probe
from gateway.ingest.redact import redact, register_secrets
from gateway.ingest.stream import CameraStream

__all__ = [
    "CameraStream",
    "EndpointReport",
    "ProbeReport",
    "probe",
    "redact",
    "register_secrets",
    "stream_path",
]
