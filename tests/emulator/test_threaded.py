"""The thread-hosted emulator, driven by py-consul's blocking client without asyncio."""

from __future__ import annotations

import consul

from tests.consul_emulator import ThreadedEmulator


def test_sync_client_against_threaded_emulator() -> None:
    with ThreadedEmulator(node_name="sync-node") as emu:
        client = consul.Consul(host="127.0.0.1", port=emu.port)
        try:
            assert client.agent.service.register("web", check=consul.Check.ttl("30s"))
            assert client.agent.check.ttl_pass("service:web", "ok")
            index, nodes = client.health.service("web", passing=True)
            assert [n["Node"]["Node"] for n in nodes] == ["sync-node"]
            emu.call(lambda e: e.advance(31))
            _, nodes = client.health.service("web", passing=True, index=index, wait="1s")
            assert nodes == []
            checks = emu.call(lambda e: e.checks())
            assert checks["service:web"]["Output"] == (
                "TTL expired (last output before timeout follows): ok"
            )
        finally:
            client.http.session.close()
