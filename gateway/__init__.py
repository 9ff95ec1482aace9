"""Streaming media gateway for IP cameras that speak the Axis camera HTTP API (VAPIX)."""

__version__ = "0.1.0"
