"""Helpers of the RQ process tests."""

from __future__ import annotations

from mqttq.testing.services import RedisServer


def rq_url(server: RedisServer) -> str:
    """The ``rq+redis://`` URL of a test server."""
    return "rq+" + server.url
