"""Tests of gateway.publish."""
