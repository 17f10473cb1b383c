"""Shutting down an event loop that a test helper runs in its own thread (the Docker proxy, the
Consul forwarder) without leaving a socket behind."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


def close_loop(loop: asyncio.AbstractEventLoop, streams: Iterable[asyncio.StreamWriter]) -> None:
    """Cancel what still runs on `loop`, abort every stream it opened, then close it.

    Connections outlive their server, and a transport still open or half-closed when the loop
    stops warns "unclosed transport" in whichever later test the collector runs in. abort() drops
    what a peer never read (close() would wait for it) and schedules connection_lost, which closes
    the socket: one more loop iteration lets that run."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    for stream in streams:
        stream.transport.abort()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
