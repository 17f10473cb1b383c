"""The daemon as a subprocess against the real engine, with the embedded registry (observed through
the ops endpoint's /v1/catalog)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker_support import ContainerFactory, wait_until
from tests.integration.processes import TEST_NODE, Daemon, ids_for

pytestmark = pytest.mark.docker


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path / "daemon.log", "-ip", "127.0.0.1").start()
    try:
        d.wait_healthy()
        yield d
    finally:
        d.kill9()


def registered(d: Daemon, name: str) -> set[str]:
    return ids_for(d.services(), name)


@pytest.mark.parametrize("how", ["stop", "kill", "die"])
def test_start_registers_and_exit_deregisters(
    daemon: Daemon, containers: ContainerFactory, busybox_image: str, how: str
) -> None:
    """start -> registered with the published port on 127.0.0.1; stop, kill or a process that
    exits on its own -> deregistered (-deregister always)."""
    command = ["sh", "-c", "sleep 2; exit 0"] if how == "die" else ["sleep", "300"]
    c = containers.run(
        busybox_image,
        command,
        ports={"8080/tcp": ("127.0.0.1", None)},
        environment={"SERVICE_NAME": "web"},
    )
    sid = f"{TEST_NODE}:{c.name}:8080"
    wait_until(lambda: sid in daemon.services(), timeout=10, what="registration")
    c.reload()
    port = int(c.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])
    inst = daemon.services()[sid]
    assert (inst["Name"], inst["Address"], inst["Port"]) == ("web", "127.0.0.1", port)
    if how == "stop":
        c.stop(timeout=1)
    elif how == "kill":
        c.kill()
    wait_until(lambda: sid not in daemon.services(), timeout=15, what="deregistration")


def test_restart_keeps_the_id(
    daemon: Daemon, containers: ContainerFactory, busybox_image: str
) -> None:
    c = containers.run(busybox_image, ["sleep", "300"], ports={"8080/tcp": ("127.0.0.1", None)})
    wait_until(lambda: registered(daemon, c.name), timeout=10, what="registration")
    before = registered(daemon, c.name)
    c.restart(timeout=0)
    c.reload()
    port = int(c.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])
    wait_until(
        lambda: any(s["Port"] == port for s in daemon.services().values()),
        timeout=10,
        what="re-registration on the new port",
    )
    assert registered(daemon, c.name) == before == {f"{TEST_NODE}:{c.name}:8080"}


def test_host_network_env_ports(
    tmp_path: Path, containers: ContainerFactory, busybox_image: str
) -> None:
    """The Tomcat case: a host-network container whose ports come in env vars."""
    d = Daemon(tmp_path / "d.log", "-ip", "127.0.0.1", "--port-env", "SERVER_*_PORT").start()
    try:
        d.wait_healthy()
        c = containers.run(
            busybox_image,
            ["sleep", "300"],
            network_mode="host",
            environment={
                "SERVER_HTTP_PORT": "31080",
                "SERVER_AJP_PORT": "31009",
                "SERVICE_NAME": "tomcat",
            },
        )
        want = {f"{TEST_NODE}:{c.name}:31080", f"{TEST_NODE}:{c.name}:31009"}
        wait_until(lambda: registered(d, c.name) == want, timeout=10, what="both ports")
        names = {d.services()[s]["Name"] for s in want}
        assert names == {"tomcat-http", "tomcat-ajp"}
    finally:
        d.kill9()


def test_on_success_keeps_failed_containers(
    tmp_path: Path, containers: ContainerFactory, busybox_image: str
) -> None:
    """-deregister on-success: exit 3 keeps the registration, exit 0 removes it."""
    d = Daemon(tmp_path / "d.log", "-ip", "127.0.0.1", "-deregister", "on-success").start()
    try:
        d.wait_healthy()
        ports = {"8080/tcp": ("127.0.0.1", None)}
        bad = containers.run(busybox_image, ["sh", "-c", "sleep 2; exit 3"], ports=ports)
        good = containers.run(busybox_image, ["sh", "-c", "sleep 2; exit 0"], ports=ports)
        bad_id, good_id = f"{TEST_NODE}:{bad.name}:8080", f"{TEST_NODE}:{good.name}:8080"
        wait_until(lambda: {bad_id, good_id} <= d.services().keys(), timeout=10, what="both")
        wait_until(
            lambda: any(e.get("container") == bad.name for e in d.events("container_exited_kept")),
            timeout=15,
            what="the kept exit",
        )
        wait_until(lambda: good_id not in d.services(), timeout=15, what="exit 0 removed")
        assert bad_id in d.services()
        bad.remove(force=True)  # gone from the engine: its registration goes too
        wait_until(lambda: bad_id not in d.services(), timeout=15, what="destroyed removed")
    finally:
        d.kill9()


def test_docker_health_gates_registration(
    daemon: Daemon, containers: ContainerFactory, busybox_image: str
) -> None:
    """A container with a HEALTHCHECK registers once healthy; an unhealthy one never does."""
    ports = {"8080/tcp": ("127.0.0.1", None)}
    ok = containers.run(
        busybox_image,
        ["sleep", "300"],
        ports=ports,
        healthcheck={"test": ["CMD", "true"], "interval": 500_000_000},
    )
    sick = containers.run(
        busybox_image,
        ["sleep", "300"],
        ports=ports,
        healthcheck={"test": ["CMD", "false"], "interval": 500_000_000, "retries": 1},
    )
    wait_until(lambda: registered(daemon, ok.name), timeout=20, what="healthy registration")
    wait_until(
        lambda: any(
            e.get("container") == sick.name and e.get("reason") == "unhealthy"
            for e in daemon.events("container_skipped")
        ),
        timeout=20,
        what="unhealthy skip",
    )
    assert not registered(daemon, sick.name)


def test_pause_deregisters_and_unpause_registers(
    daemon: Daemon, containers: ContainerFactory, busybox_image: str
) -> None:
    c = containers.run(busybox_image, ["sleep", "300"], ports={"8080/tcp": ("127.0.0.1", None)})
    wait_until(lambda: registered(daemon, c.name), timeout=10, what="registration")
    c.pause()
    wait_until(lambda: not registered(daemon, c.name), timeout=10, what="paused: gone")
    c.unpause()
    wait_until(lambda: registered(daemon, c.name), timeout=10, what="unpaused: back")


def test_sigterm_keeps_registrations_and_exits_zero(
    tmp_path: Path, containers: ContainerFactory, busybox_image: str
) -> None:
    d = Daemon(tmp_path / "d.log", "-ip", "127.0.0.1").start()
    d.wait_healthy()
    containers.run(busybox_image, ["sleep", "300"], ports={"8080/tcp": ("127.0.0.1", None)})
    wait_until(lambda: d.events("service_registered"), timeout=10, what="a registration")
    assert d.stop() == 0
    assert [e["event"] for e in d.events()][-2:] == ["daemon_stopping", "daemon_stopped"]
    assert not d.events("service_deregistered")


def test_a_second_signal_forces_exit_but_a_duplicate_does_not(tmp_path: Path) -> None:
    """Two SIGTERMs at once (make, timeout and process-group kills do that) stop gracefully; a
    second signal a moment later forces the exit."""
    d = Daemon(tmp_path / "d.log", "-ip", "127.0.0.1").start()
    d.wait_healthy()
    assert d.proc is not None
    d.proc.send_signal(signal.SIGTERM)
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(15) == 0
    assert not d.events("daemon_forced_exit")
