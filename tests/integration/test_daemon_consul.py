"""The daemon as a subprocess, real engine, registering into the Consul emulator (a subprocess
too): outages, restarts with -cleanup, TTL checks, ACL refusals."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.models.containers import Container

from registrator.reconcile import id_owner
from tests.docker_support import ContainerFactory, wait_until
from tests.integration.processes import TEST_NODE, Daemon, Emulator, ids_for

pytestmark = pytest.mark.docker
PORTS = {"8080/tcp": ("127.0.0.1", None)}


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    emu = Emulator(
        tmp_path / "emulator.log", "--check-reap-interval", "1s", "--dcsa-min", "2s"
    ).start()
    try:
        yield emu
    finally:
        emu.stop()


def start_daemon(
    tmp_path: Path,
    emu: Emulator,
    *args: str,
    log: str = "daemon.log",
    env: dict[str, str] | None = None,
) -> Daemon:
    d = Daemon(tmp_path / log, "-ip", "127.0.0.1", *args, f"consul://127.0.0.1:{emu.port}", env=env)
    d.start()
    d.wait_healthy()
    return d


def ours(emu: Emulator, *cs: Container, token: str | None = None) -> set[str]:
    """This test's registrations: other containers may run on the same engine (the daemon
    registers them too), so every assertion is scoped to the containers the test started."""
    names = {c.name for c in cs}
    return {
        sid
        for sid in emu.services(token)
        if (owner := id_owner(sid)) is not None
        and owner == (TEST_NODE, owner[1])
        and owner[1] in names
    }


def expected_ids(*cs: Container) -> set[str]:
    return {f"{TEST_NODE}:{c.name}:8080" for c in cs}


def test_register_body_reaches_consul(
    tmp_path: Path, emulator: Emulator, containers: ContainerFactory, busybox_image: str
) -> None:
    d = start_daemon(tmp_path, emulator)
    try:
        c = containers.run(
            busybox_image,
            ["sleep", "300"],
            ports=PORTS,
            environment={
                "SERVICE_NAME": "web",
                "SERVICE_TAGS": "a,b",
                "SERVICE_REGION": "eu",
                "SERVICE_CHECK_HTTP": "/health",
                "SERVICE_CHECK_2_TCP": "true",
            },
        )
        sid = f"{TEST_NODE}:{c.name}:8080"
        wait_until(lambda: sid in emulator.services(), timeout=10, what="registration")
        c.reload()
        port = int(c.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])
        svc = emulator.services()[sid]
        assert (svc["Service"], svc["Address"], svc["Port"]) == ("web", "127.0.0.1", port)
        assert svc["Tags"] == ["a", "b"]
        assert svc["Meta"] == {"region": "eu"}
        checks = {k: v for k, v in emulator.checks().items() if v["ServiceID"] == sid}
        assert {v["Type"] for v in checks.values()} == {"http", "tcp"}
        c.stop(timeout=0)
        wait_until(lambda: sid not in emulator.services(), timeout=10, what="deregistration")
    finally:
        d.kill9()


def test_kill9_changes_while_down_restart_with_cleanup(
    tmp_path: Path, emulator: Emulator, containers: ContainerFactory, busybox_image: str
) -> None:
    """kill -9 the daemon; stop one container, start another while it is down; restart with
    -cleanup: the registry converges exactly, without duplicates. Another node's service and a
    hand-made one survive."""
    emulator_put(emulator, {"Name": "other", "ID": "othernode:x:80", "Port": 80})
    emulator_put(emulator, {"Name": "manual", "ID": "manual-1", "Port": 81})
    d1 = start_daemon(tmp_path, emulator, "-cleanup", log="d1.log")
    a = containers.run(busybox_image, ["sleep", "300"], ports=PORTS)
    b = containers.run(busybox_image, ["sleep", "300"], ports=PORTS)
    wait_until(lambda: ours(emulator, a, b) == expected_ids(a, b), timeout=15, what="a and b")
    d1.kill9()
    b.stop(timeout=0)
    c = containers.run(busybox_image, ["sleep", "300"], ports=PORTS)
    assert ours(emulator, a, b, c) == expected_ids(a, b)  # nobody watching
    d2 = start_daemon(tmp_path, emulator, "-cleanup", log="d2.log")
    try:
        wait_until(
            lambda: ours(emulator, a, b, c) == expected_ids(a, c), timeout=15, what="convergence"
        )
        services = emulator.services()
        assert "othernode:x:80" in services
        assert "manual-1" in services
        registrations = [
            e["service_id"]
            for e in d2.events("service_registered")
            if e["service_id"] in expected_ids(a, b, c)
        ]
        assert registrations == [f"{TEST_NODE}:{c.name}:8080"]  # a was already there
    finally:
        d2.kill9()


def emulator_put(emu: Emulator, body: dict[str, Any]) -> None:
    import requests

    r = requests.put(emu.url + "/v1/agent/service/register", json=body, timeout=5)
    assert r.status_code == 200, r.text


def test_consul_500s_then_recovers(
    tmp_path: Path, emulator: Emulator, containers: ContainerFactory, busybox_image: str
) -> None:
    d = start_daemon(tmp_path, emulator)
    try:
        r = emulator.post(
            "/_emulator/fault", params={"path": "/v1/agent/", "status": "500", "duration": "3s"}
        )
        assert r.status_code == 200
        a = containers.run(busybox_image, ["sleep", "300"], ports=PORTS)
        wait_until(
            lambda: d.events("registry_unavailable") or d.events("service_register_failed"),
            timeout=10,
            what="the daemon to see the outage",
        )
        # The test's own reads fail during the fault too; ValueError: a 500 is not JSON.
        wait_until(
            lambda: ours(emulator, a) == expected_ids(a),
            timeout=30,
            what="convergence",
            ignore=(ValueError,),
        )
    finally:
        d.kill9()


def test_consul_refusing_connections_then_recovers(
    tmp_path: Path, emulator: Emulator, containers: ContainerFactory, busybox_image: str
) -> None:
    d = start_daemon(tmp_path, emulator)
    try:
        a = containers.run(busybox_image, ["sleep", "300"], ports=PORTS)
        wait_until(lambda: ours(emulator, a) == expected_ids(a), timeout=10, what="a")
        emulator.post("/_emulator/listener/restart", params={"down": "3s"})
        a.stop(timeout=0)
        b = containers.run(busybox_image, ["sleep", "300"], ports=PORTS)
        wait_until(lambda: d.events("registry_unavailable"), timeout=10, what="refused")
        wait_until(
            lambda: ours(emulator, a, b) == expected_ids(b),
            timeout=30,
            what="convergence",
            ignore=(OSError,),
        )
    finally:
        d.kill9()


def test_ttl_checks_pass_while_running_and_go_critical_after_kill(
    tmp_path: Path, emulator: Emulator, containers: ContainerFactory, busybox_image: str
) -> None:
    d = start_daemon(tmp_path, emulator, "-ttl", "2", "-ttl-refresh", "1")
    a = containers.run(busybox_image, ["sleep", "300"], ports=PORTS)
    check_id = f"service:{TEST_NODE}:{a.name}:8080:ttl"
    try:
        wait_until(lambda: check_id in emulator.checks(), timeout=10, what="TTL check")
        # Passing now, and still passing after more than one TTL: the daemon keeps passing it.
        sid = f"{TEST_NODE}:{a.name}:8080"
        first_pass = sum(e["service_id"] == sid for e in d.events("service_registered"))
        assert emulator.checks()[check_id]["Status"] == "passing"
        wait_until(lambda: ttl_passes(emulator, check_id) >= 4, timeout=15, what="4 passes")
        assert emulator.checks()[check_id]["Status"] == "passing"
        assert first_pass == 1
    finally:
        d.kill9()
    wait_until(
        lambda: emulator.checks().get(check_id, {}).get("Status") == "critical",
        timeout=10,
        what="critical after the daemon died",
    )
    # DeregisterCriticalServiceAfter (3 x TTL; the emulator's 1 minute floor is lowered) reaps it.
    wait_until(
        lambda: f"{TEST_NODE}:{a.name}:8080" not in emulator.services(), timeout=20, what="reaped"
    )


def ttl_passes(emu: Emulator, check_id: str) -> int:
    records = emu.get("/_emulator/requests", params={"path": "/v1/agent/check/pass/"}).json()
    return sum(1 for r in records if r["path"].endswith(check_id))


def test_acl_refusal_is_logged_with_consuls_text_and_not_retried(
    tmp_path: Path, containers: ContainerFactory, busybox_image: str
) -> None:
    emu = Emulator(tmp_path / "emu.log", "--acl-master-token", "s3cret-master").start()
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-master\n")
    d = start_daemon(tmp_path, emu, "-resync", "1", log="anon.log")
    try:
        a = containers.run(busybox_image, ["sleep", "300"], ports=PORTS)
        sid = f"{TEST_NODE}:{a.name}:8080"

        def failures() -> list[dict[str, Any]]:
            return [e for e in d.events("service_register_failed") if e["service_id"] == sid]

        wait_until(failures, timeout=10, what="refusal")
        failure = failures()[0]
        assert failure["status"] == 403
        assert failure["error"].startswith("Permission denied: anonymous token lacks permission")
        assert failure["retryable"] is False
        # Later passes do not hammer Consul: at most one attempt per resync.
        wait_until(lambda: len(d.events("reconcile_done")) >= 4, timeout=15, what="more passes")
        resyncs = sum(1 for e in d.events("reconcile_done") if e.get("full"))
        assert 1 <= len(failures()) <= resyncs + 1
        d.kill9()
        d2 = start_daemon(
            tmp_path,
            emu,
            "--token-file",
            str(token_file),
            log="token.log",
            env={"CONSUL_HTTP_TOKEN": "wrong"},
        )
        try:
            wait_until(
                lambda: ours(emu, a, token="s3cret-master") == expected_ids(a),
                timeout=10,
                what="registration with the token file",
            )
            assert "s3cret-master" not in (tmp_path / "token.log").read_text()
        finally:
            d2.kill9()
    finally:
        d.kill9()
        emu.stop()


def test_storm_of_100_containers(
    tmp_path: Path, emulator: Emulator, containers: ContainerFactory, busybox_image: str
) -> None:
    """100 containers started concurrently, then half stopped concurrently: the registry ends
    equal to the engine's truth."""
    from concurrent.futures import ThreadPoolExecutor

    d = start_daemon(tmp_path, emulator)
    try:
        with ThreadPoolExecutor(16) as pool:
            started = list(
                pool.map(
                    lambda _: containers.run(busybox_image, ["sleep", "300"], ports=PORTS),
                    range(100),
                )
            )
            wait_until(
                lambda: ours(emulator, *started) == expected_ids(*started),
                timeout=120,
                interval=0.5,
                what="100 registrations",
            )
            stopped = started[::2]
            list(pool.map(lambda c: c.kill(), stopped))
        truth = expected_ids(*started[1::2])
        wait_until(
            lambda: ours(emulator, *started) == truth,
            timeout=120,
            interval=0.5,
            what="the engine's truth",
        )
        assert ids_for(emulator.services(), started[0].name) == set()
    finally:
        d.kill9()


def test_shutdown_deregisters_when_asked_and_a_second_signal_forces_exit(
    tmp_path: Path, emulator: Emulator, containers: ContainerFactory, busybox_image: str
) -> None:
    """--deregister-on-shutdown removes running containers' services on SIGTERM; when that hangs
    (Consul stalls), a second SIGTERM exits at once with 128+15."""
    a = containers.run(busybox_image, ["sleep", "300"], ports=PORTS)
    d = start_daemon(tmp_path, emulator, "--deregister-on-shutdown", log="d1.log")
    wait_until(lambda: ours(emulator, a) == expected_ids(a), timeout=10, what="registered")
    assert d.stop() == 0
    assert ours(emulator, a) == set()

    d2 = start_daemon(tmp_path, emulator, "--deregister-on-shutdown", log="d2.log")
    try:
        wait_until(lambda: ours(emulator, a) == expected_ids(a), timeout=10, what="again")
        emulator.post(
            "/_emulator/fault",
            params={"path": "/v1/agent/service/deregister", "status": "none", "delay": "30s"},
        )
        assert d2.proc is not None
        d2.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: d2.events("daemon_stopping"), timeout=10, what="stopping")
        stopping_at = time.monotonic()
        # Past the window in which a duplicate of the first signal is ignored.
        wait_until(lambda: time.monotonic() - stopping_at > 0.6, timeout=5, what="a moment")
        assert d2.proc.poll() is None  # still stuck deregistering
        d2.proc.send_signal(signal.SIGTERM)
        assert d2.proc.wait(10) == 128 + signal.SIGTERM
        assert d2.events("daemon_forced_exit")
    finally:
        d2.kill9()
