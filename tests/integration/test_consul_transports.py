"""consul-unix:// and consul-tls:// (CA and client certificate from CONSUL_* env vars)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docker_support import ContainerFactory, wait_until
from tests.integration.forwarder import Forwarder, make_pki, server_tls
from tests.integration.processes import TEST_NODE, Daemon, Emulator

pytestmark = pytest.mark.docker
PORTS = {"8080/tcp": ("127.0.0.1", None)}


def test_consul_unix_socket(
    tmp_path: Path, containers: ContainerFactory, busybox_image: str
) -> None:
    emu = Emulator(tmp_path / "emu.log").start()
    sock = tmp_path / "consul.sock"
    try:
        with Forwarder(emu.port, unix_path=sock).running() as fwd:
            d = Daemon(tmp_path / "d.log", "-ip", "127.0.0.1", f"consul-unix://{sock}").start()
            try:
                d.wait_healthy()
                c = containers.run(busybox_image, ["sleep", "300"], ports=PORTS)
                sid = f"{TEST_NODE}:{c.name}:8080"
                wait_until(lambda: sid in emu.services(), timeout=15, what="registration")
                assert fwd.connections > 0
            finally:
                d.kill9()
    finally:
        emu.stop()


def test_consul_tls_with_client_certificate(
    tmp_path: Path, containers: ContainerFactory, busybox_image: str
) -> None:
    pki = make_pki(tmp_path)
    emu = Emulator(tmp_path / "emu.log").start()
    try:
        with Forwarder(emu.port, tls=server_tls(pki)).running() as fwd:
            env = {
                "CONSUL_CACERT": str(pki.ca),
                "CONSUL_CLIENT_CERT": str(pki.client_cert),
                "CONSUL_CLIENT_KEY": str(pki.client_key),
            }
            d = Daemon(
                tmp_path / "d.log",
                "-ip",
                "127.0.0.1",
                f"consul-tls://127.0.0.1:{fwd.port}",
                env=env,
            ).start()
            try:
                d.wait_healthy()
                c = containers.run(busybox_image, ["sleep", "300"], ports=PORTS)
                sid = f"{TEST_NODE}:{c.name}:8080"
                wait_until(lambda: sid in emu.services(), timeout=15, what="registration over TLS")
            finally:
                d.kill9()
            # Without the client certificate the server refuses the handshake: no registration.
            bad = Daemon(
                tmp_path / "bad.log",
                "-ip",
                "127.0.0.1",
                "-retry-attempts",
                "0",
                f"consul-tls://127.0.0.1:{fwd.port}",
                env={"CONSUL_CACERT": str(pki.ca)},
            ).start()
            assert bad.proc is not None
            assert bad.proc.wait(30) == 3
            assert bad.events("startup_failed")
    finally:
        emu.stop()
