"""WebRTC egress: WHEP signaling and tracks fed from the shared encode."""
