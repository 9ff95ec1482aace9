"""gateway.publish.webrtc.net: gather_on chooses aioice's host addresses, loopback included."""

from __future__ import annotations

import asyncio
import importlib

import aioice.ice
import pytest

from gateway.errors import LocalProtocolError
from gateway.publish.webrtc import net


def test_inside_the_context_exactly_the_chosen_addresses() -> None:
    with net.gather_on(["127.0.0.1", "::1"]):
        assert net.chosen_addresses() == ("127.0.0.1", "::1")
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1", "::1"]
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(False, True) == ["::1"]
    assert net.chosen_addresses() is None


def test_outside_or_none_aioice_decides() -> None:
    # aioice's own choice never includes loopback (it enumerates interfaces, no traffic).
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, False)
    with net.gather_on(None):
        assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, False)


def test_contexts_nest_and_restore() -> None:
    with net.gather_on(["127.0.0.1"]):
        with net.gather_on([]):
            assert aioice.ice.get_host_addresses(True, True) == []
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]


def test_rejects_names() -> None:
    with (
        pytest.raises(LocalProtocolError, match="'localhost' is not an IP address"),
        net.gather_on(["localhost"]),
    ):
        pass  # pragma: no cover


def test_wraps_once() -> None:
    wrapped = aioice.ice.get_host_addresses
    importlib.reload(net)
    assert aioice.ice.get_host_addresses is wrapped
    with net.gather_on(["127.0.0.1"]):
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]


async def test_tasks_created_inside_see_the_choice() -> None:
    async def gather() -> list[str]:
        return aioice.ice.get_host_addresses(True, True)

    with net.gather_on(["127.0.0.1"]):
        task = asyncio.create_task(gather())
    assert await task == ["127.0.0.1"]


async def test_an_aioice_connection_gathers_on_loopback() -> None:
    conn = aioice.Connection(ice_controlling=True)
    try:
        with net.gather_on(["127.0.0.1"]):
            await conn.gather_candidates()
        assert [(c.host, c.type) for c in conn.local_candidates] == [("127.0.0.1", "host")]
    finally:
        await conn.close()
