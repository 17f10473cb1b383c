"""Helpers for the proxy tests: catalog builders, a real HAProxy in master-worker mode, a bounded
HTTP load loop. Everything talks to 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from registrator.model import CatalogInstance, CatalogSnapshot, Check, ServiceInstance
from registrator.proxy_config.config import find_haproxy
from registrator.routing_hints import hint_tags
from tests.docker_support import wait_until

HAPROXY = find_haproxy()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def instance(
    sid: str,
    name: str,
    port: int,
    tags: Sequence[str] = (),
    *,
    status: str = "passing",
    address: str = "127.0.0.1",
    checks: Sequence[Check] = (),
    node: str = "n1",
) -> CatalogInstance:
    return CatalogInstance(
        node=node,
        node_address="127.0.0.1",
        service=ServiceInstance(
            id=sid, name=name, address=address, port=port, tags=tuple(tags), checks=tuple(checks)
        ),
        status=status,  # type: ignore[arg-type]
    )


def vhost_tags(service: str, host: str, path: str | None = None) -> tuple[str, ...]:
    env = {"VIRTUAL_HOST": host}
    if path:
        env["VIRTUAL_PATH"] = path
    tags, problems = hint_tags({}, env, service_name=service, port=80)
    assert not problems, problems
    return tags


def snapshot(instances: Iterable[CatalogInstance], version: int = 1) -> CatalogSnapshot:
    return CatalogSnapshot(tuple(instances), (("n1", "127.0.0.1"),), version)


def unix_command(path: Path, command: str, timeout: float = 5.0) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


class Haproxy:
    """`haproxy -W -S master.sock -f cfg` as a child process; reload with `kill -USR2 <pid>`."""

    def __init__(self, workdir: Path, config: Path) -> None:
        assert HAPROXY is not None
        self.config = config
        self.master_socket = workdir / "master.sock"
        self.log_path = workdir / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def reload_command(self) -> str:
        assert self.proc is not None
        return f"kill -USR2 {self.proc.pid}"

    def start(self) -> Haproxy:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [HAPROXY or "haproxy", "-W", "-S", str(self.master_socket), "-f", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        wait_until(self.workers, timeout=10, what="haproxy worker", ignore=(OSError,))
        return self

    def master(self, command: str) -> str:
        return unix_command(self.master_socket, f"{command};quit")  # the master CLI stays open

    def show_proc(self) -> list[list[str]]:
        """`show proc` rows; retried while the master re-executes itself on a reload."""
        rows = wait_until(
            lambda: [r.split() for r in self.master("show proc").splitlines() if r[:1].isdigit()],
            timeout=10,
            interval=0.05,
            what="the haproxy master CLI",
            ignore=(OSError,),
        )
        return list(rows)

    def workers(self) -> list[str]:
        self.assert_alive()
        return [row[0] for row in self.show_proc() if row[1] == "worker"]

    def reloads(self) -> int:
        """The master's reload counter (`show proc`)."""
        for row in self.show_proc():
            if row[1] == "master":
                return int(row[2])
        raise AssertionError("no master line in show proc")

    def assert_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"haproxy exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}"
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def get(port: int, host: str, path: str = "/", timeout: float = 3.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Load:
    """Keep-alive GETs on loopback from a few threads until stopped (bounded in time/count)."""

    port: int
    host: str
    threads: int = 2
    max_seconds: float = 60.0
    max_requests: int = 200_000
    statuses: Counter[int] = field(default_factory=Counter)
    bodies: Counter[bytes] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.statuses.values()) + len(self.errors)

    @property
    def failed(self) -> int:
        with self._lock:
            return sum(n for s, n in self.statuses.items() if s != 200) + len(self.errors)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self.total >= self.max_requests:
                break
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/", headers={"Host": self.host})
                response = conn.getresponse()
                body = response.read()
                with self._lock:
                    self.statuses[response.status] += 1
                    self.bodies[body.strip()] += 1
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.errors.append(repr(exc))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(10)

    def wait_requests(self, n: int, timeout: float = 20.0) -> None:
        start = self.total
        wait_until(lambda: self.total >= start + n, timeout=timeout, what=f"{n} more requests")


def httpd_command(text: str, port: int = 8080) -> list[str]:
    """busybox httpd serving `text` at / (foreground)."""
    return [
        "sh",
        "-c",
        f"mkdir -p /w && echo {text} > /w/index.html && exec httpd -f -p {port} -h /w",
    ]


@contextlib.contextmanager
def running(h: Haproxy):  # type: ignore[no-untyped-def]
    try:
        yield h.start()
    finally:
        h.stop()
