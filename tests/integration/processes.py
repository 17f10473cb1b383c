"""The daemon and the Consul emulator as real subprocesses, for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from tests.docker_support import wait_until

REPO = Path(__file__).resolve().parents[2]
TEST_NODE = "testnode"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """`python -m registrator ...` with its ops endpoint on a free loopback port."""

    def __init__(self, log_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.http_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "registrator",
            "--http-addr",
            f"127.0.0.1:{self.http_port}",
            "--dns-addr",
            "off",
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "--node",
            TEST_NODE,
            *self.args,
        ]

    def start(self) -> Daemon:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=self.env
        )
        log.close()
        return self

    def wait_healthy(self, timeout: float = 30) -> None:
        def healthy() -> bool:
            self.assert_alive()
            return self.get("/health").status_code == 200

        wait_until(
            healthy, timeout=timeout, what="daemon /health 200", ignore=(requests.ConnectionError,)
        )

    def get(self, path: str) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{self.http_port}{path}", timeout=5)

    def services(self) -> dict[str, dict[str, Any]]:
        """The embedded registry's instances, by service ID."""
        return {i["ID"]: i for i in self.get("/v1/catalog").json()["instances"]}

    def assert_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                entry = json.loads(line)
                if isinstance(entry, dict) and (name is None or entry.get("event") == name):
                    out.append(entry)
        return out

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Emulator:
    """`python -m tests.consul_emulator` on a fixed loopback port (so it can be restarted)."""

    def __init__(self, log_path: Path, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.args = list(args)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Emulator:
        log = self.log_path.open("ab")
        cmd = [sys.executable, "-m", "tests.consul_emulator", "--port", str(self.port), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        log.close()
        wait_until(
            lambda: self.get("/v1/status/leader").status_code == 200,
            timeout=20,
            what="emulator",
            ignore=(requests.ConnectionError,),
        )
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=5, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return requests.post(self.url + path, timeout=5, **kw)

    def services(self, token: str | None = None) -> dict[str, dict[str, Any]]:
        headers = {"X-Consul-Token": token} if token else {}
        return dict(self.get("/v1/agent/services", headers=headers).json())

    def checks(self) -> dict[str, dict[str, Any]]:
        return dict(self.get("/v1/agent/checks").json())


@contextlib.contextmanager
def running(*procs: Daemon | Emulator) -> Iterator[None]:
    try:
        yield
    finally:
        for p in reversed(procs):
            if isinstance(p, Daemon):
                p.kill9()
            else:
                p.stop()


def ids_for(services: dict[str, Any], container_name: str) -> set[str]:
    return {sid for sid in services if f":{container_name}:" in sid}
