"""A Consul HTTP API emulator for tests (see ``shared/reference/consul-api-spec.md``).

In-process::

    async with running_emulator() as consul:
        client = consul.aio.Consul(host="127.0.0.1", port=consul.port)

From synchronous code::

    with ThreadedEmulator() as consul:
        ...  # consul.url, consul.call(lambda emu: emu.advance(60))

As a process (from the repository root)::

    python -m tests.consul_emulator --port 0 [--acl-master-token TOKEN]

Test hooks (never under ``/v1``; JSON body or query parameters)::

    GET    /_emulator/index                      {"index": n}
    POST   /_emulator/advance?by=90s             virtual clock; due TTL expiries/reaps run now
    POST   /_emulator/check/<id>/status?status=passing&output=...   force a check's status
    POST   /_emulator/sync                       full anti-entropy pass
    POST   /_emulator/reset                      forget registrations, faults, request log
    POST   /_emulator/fault?path=/v1/agent/&status=500&count=2|duration=30s&delay=1s&method=PUT
    GET    /_emulator/fault   DELETE /_emulator/fault
    POST   /_emulator/no-leader?enable=true|false
    GET    /_emulator/requests?since=SEQ&path=/v1/health   DELETE /_emulator/requests
    POST   /_emulator/listener/restart?down=2s   refuse connections for a while, same port
"""

from __future__ import annotations

from .app import EmulatorConfig
from .clock import ManualClock, VirtualClock
from .emulator import ConsulEmulator, ThreadedEmulator, running_emulator

__all__ = [
    "ConsulEmulator",
    "EmulatorConfig",
    "ManualClock",
    "ThreadedEmulator",
    "VirtualClock",
    "running_emulator",
]
