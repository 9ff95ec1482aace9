"""Tests of gateway.hub."""
