"""Least privilege towards Docker: the daemon only reads from the engine (GET requests and the
events stream). A filtering proxy on a unix socket forwards GETs to the engine and refuses every
other method; the daemon, pointed at it with DOCKER_HOST, still registers and deregisters."""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker_support import ContainerFactory, wait_until
from tests.integration.docker_proxy import ENGINE_SOCKET, ReadOnlyDockerProxy
from tests.integration.processes import TEST_NODE, Daemon

pytestmark = pytest.mark.docker
PORTS = {"8080/tcp": ("127.0.0.1", None)}


@pytest.fixture
def proxy() -> Iterator[ReadOnlyDockerProxy]:
    if not ENGINE_SOCKET.is_socket():
        pytest.skip(f"the engine is not on {ENGINE_SOCKET}; the proxy forwards to that socket")
    # A short directory: unix socket paths are limited to 107 bytes, pytest's tmp_path can be longer
    with tempfile.TemporaryDirectory(prefix="regproxy-") as tmp:
        proxy = ReadOnlyDockerProxy(Path(tmp) / "docker.sock")
        with proxy.running():
            yield proxy


def raw_request(path: Path, request: bytes, *, until: bytes, timeout: float = 10) -> bytes:
    """Send one raw HTTP request on a unix socket; read until `until` shows up or EOF."""
    deadline = time.monotonic() + timeout
    received = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(request)
        while until not in received:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {until!r} within {timeout}s; got {received[:300]!r}")
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            data = sock.recv(65536)
            if not data:
                break
            received += data
    return received


def test_proxy_refuses_writes_and_streams_events(
    proxy: ReadOnlyDockerProxy, containers: ContainerFactory, busybox_image: str
) -> None:
    """The proxy itself: a write is refused before reaching the engine (so the daemon test below
    is not vacuous), and the chunked /events stream is relayed live, one chunk at a time."""
    refused = raw_request(
        proxy.path,
        b"POST /containers/regtest-no-such-container/kill HTTP/1.1\r\nHost: docker\r\n"
        b"Content-Length: 0\r\n\r\n",
        until=b"read-only proxy",
    )
    assert refused.startswith(b"HTTP/1.1 403 ")
    assert [(s.method, s.allowed) for s in proxy.seen] == [("POST", False)]

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(15)
        sock.connect(str(proxy.path))
        sock.sendall(b'GET /events?filters={"type":["container"]} HTTP/1.1\r\nHost: docker\r\n\r\n')
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"chunked" in head.lower()
        # The engine sends nothing until something happens; the start must arrive while the
        # stream stays open, which a buffering proxy would never deliver.
        c = containers.run(busybox_image, ["sleep", "300"])
        received = head
        deadline = time.monotonic() + 15
        while c.id.encode() not in received:
            assert time.monotonic() < deadline, f"no event for {c.name}: {received[-500:]!r}"
            data = sock.recv(65536)
            assert data, "the proxy closed the event stream"
            received += data
    assert proxy.seen[-1].path == "/events"


def test_daemon_registers_through_a_get_only_proxy(
    tmp_path: Path, proxy: ReadOnlyDockerProxy, containers: ContainerFactory, busybox_image: str
) -> None:
    """Start, pause, unpause and stop a container while the daemon sees the engine only through the
    GET-only proxy. No -resync: the registration of a container started after the daemon can only
    come from the event stream, so it also proves the stream flows through the proxy."""
    d = Daemon(
        tmp_path / "daemon.log",
        "-ip",
        "127.0.0.1",
        # on-success makes every full resync list exited containers too: one more read path
        "-deregister",
        "on-success",
        "-cleanup",
        env={"DOCKER_HOST": proxy.url, "DOCKER_CONTEXT": "default"},
    ).start()
    try:
        d.wait_healthy()
        c = containers.run(busybox_image, ["sleep", "300"], ports=PORTS)
        sid = f"{TEST_NODE}:{c.name}:8080"
        wait_until(lambda: sid in d.services(), timeout=15, what="registration via the proxy")
        c.pause()
        wait_until(lambda: sid not in d.services(), timeout=15, what="deregistration on pause")
        c.unpause()
        wait_until(lambda: sid in d.services(), timeout=15, what="registration on unpause")
        c.stop(timeout=0)
        wait_until(lambda: sid not in d.services(), timeout=15, what="deregistration")
        d.assert_alive()
    finally:
        d.stop()

    seen = proxy.seen
    assert seen, "the daemon never used the proxy"
    assert proxy.refused == [], f"the daemon sent non-GET requests: {proxy.refused}"
    assert {s.method for s in seen} == {"GET"}
    paths = sorted({s.path for s in seen})
    assert any(p.endswith("/events") for p in paths), paths
    assert any(p.endswith("/containers/json") for p in paths), paths
    assert any(p.endswith(f"/containers/{c.id}/json") for p in paths), paths
    assert not d.events("register_role_crashed")
    assert not d.events("docker_unavailable"), d.log_tail()
