"""Fixtures for the proxy tests: a writer driven in-process from a `Latest[CatalogSnapshot]`, a
real HAProxy, busybox httpd containers published on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from registrator.broadcast import Latest
from registrator.model import CatalogSnapshot
from registrator.proxy_config import ProxyConfig, ProxyWriter
from tests.docker_support import ContainerFactory, host_port, wait_http
from tests.proxy.support import HAPROXY, Haproxy, free_port, httpd_command


async def until(
    probe: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.02
) -> Any:
    """Poll `probe` on the event loop until it is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class Running:
    writer: ProxyWriter
    latest: Latest[CatalogSnapshot]
    task: asyncio.Task[None]

    async def publish(self, snap: CatalogSnapshot) -> int:
        await self.latest.publish(snap)
        return self.latest.version

    async def applied(self, version: int | None = None, timeout: float = 20.0) -> None:
        """Wait until the writer has applied `version` (default: the newest)."""
        want = self.latest.version if version is None else version
        await until(
            lambda: self._check() and self.writer.stats.last_applied_version >= want,
            timeout=timeout,
            what=f"snapshot {want} applied",
        )

    def _check(self) -> bool:
        if self.task.done():
            self.task.result()  # raises what killed the writer
            raise AssertionError("the writer stopped")
        return True


StartWriter = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_writer() -> AsyncIterator[StartWriter]:
    """`await start_writer(config, first_snapshot)`: a writer task, cancelled after the test."""
    tasks: list[asyncio.Task[None]] = []

    async def start(config: ProxyConfig, first: CatalogSnapshot | None = None) -> Running:
        latest: Latest[CatalogSnapshot] = Latest(CatalogSnapshot())
        if first is not None:
            await latest.publish(first)
        writer = ProxyWriter(config)
        task = asyncio.create_task(writer.run(latest))
        tasks.append(task)
        return Running(writer, latest, task)

    try:
        yield start
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
def haproxy_config(tmp_path: Path) -> ProxyConfig:
    """HAProxy output on a free loopback port, quick debounce for tests."""
    if HAPROXY is None:
        pytest.skip("no haproxy binary")
    return ProxyConfig(
        haproxy_config=tmp_path / "haproxy.cfg",
        bind_host="127.0.0.1",
        bind_port=free_port(),
        haproxy_bin=HAPROXY,
        wait_min=0.05,
        wait_max=0.5,
        min_reload_interval=0.2,
        removal_confirm_after=1.0,
    )


@pytest.fixture
def haproxy_process(tmp_path: Path) -> Iterator[Callable[[Path], Haproxy]]:
    started: list[Haproxy] = []

    def start(config: Path) -> Haproxy:
        h = Haproxy(tmp_path, config)
        started.append(h)
        return h.start()

    try:
        yield start
    finally:
        for h in started:
            h.stop()


@dataclass(frozen=True)
class Httpd:
    name: str
    port: int
    container: Any


@pytest.fixture
def httpds(containers: ContainerFactory, busybox_image: str) -> Callable[[int], list[Httpd]]:
    """`httpds(n)`: n busybox httpd containers on 127.0.0.1, each serving its own name."""

    def start(n: int) -> list[Httpd]:
        out = []
        for i in range(n):
            text = f"backend-{i}"
            c = containers.run(
                busybox_image, httpd_command(text), ports={"8080/tcp": ("127.0.0.1", None)}
            )
            out.append(Httpd(text, 0, c))
        ready = []
        for h in out:
            port = host_port(h.container, "8080/tcp")
            wait_http("127.0.0.1", port, timeout=20)
            ready.append(replace(h, port=port))
        return ready

    return start
