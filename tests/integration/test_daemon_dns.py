"""The DNS role inside the daemon: a container started on the real engine resolves through dig
within a second of its registration; DNS metrics count the queries; a taken port is exit 3."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.docker_support import ContainerFactory, wait_until
from tests.integration.processes import TEST_NODE, Daemon, Emulator, free_port
from tests.proxy.support import httpd_command

pytestmark = pytest.mark.docker


def dig(port: int, *query: str) -> list[str]:
    out = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), "+short", "+tries=1", "+time=2", *query],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return out.stdout.split("\n")[:-1]


def test_containers_resolve_through_the_daemon(
    tmp_path: Path, containers: ContainerFactory, busybox_image: str
) -> None:
    port = free_port()
    d = Daemon(tmp_path / "d.log", "-ip", "127.0.0.1")
    d.args += ["--dns-addr", f"127.0.0.1:{port}"]
    d.start()
    try:
        d.wait_healthy()
        c = containers.run(
            busybox_image,
            ["sleep", "300"],
            ports={"8080/tcp": ("127.0.0.1", None)},
            environment={"SERVICE_NAME": "shop"},
        )
        c.reload()
        host_port = c.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        wait_until(
            lambda: dig(port, "shop.service.consul") == ["127.0.0.1"], timeout=10, what="A record"
        )
        srv = dig(port, "_shop._tcp.service.consul", "SRV")
        assert len(srv) == 1
        assert srv[0].split()[2] == host_port
        c.stop(timeout=0)
        wait_until(lambda: dig(port, "shop.service.consul") == [], timeout=10, what="gone")
        metrics = d.get("/metrics").text
        assert 'registrator_dns_queries_total{rcode="NOERROR"}' in metrics
        assert 'registrator_dns_queries_total{rcode="NXDOMAIN"}' in metrics
    finally:
        d.kill9()


def test_embedded_checks_take_a_broken_app_out_of_dns(
    tmp_path: Path, containers: ContainerFactory, busybox_image: str
) -> None:
    """The container keeps running while its app breaks: the embedded registry's own HTTP check
    turns critical and DNS stops answering for it, then takes it back once the app recovers."""
    port = free_port()
    d = Daemon(tmp_path / "d.log", "-ip", "127.0.0.1")
    d.args += ["--dns-addr", f"127.0.0.1:{port}"]
    d.start()
    try:
        d.wait_healthy()
        c = containers.run(
            busybox_image,
            httpd_command("fine"),
            ports={"8080/tcp": ("127.0.0.1", None)},
            environment={
                "SERVICE_NAME": "cart",
                "SERVICE_CHECK_HTTP": "/index.html",
                "SERVICE_CHECK_INTERVAL": "1s",
            },
        )
        sid = f"{TEST_NODE}:{c.name}:8080"
        wait_until(lambda: dig(port, "cart.service.consul") == ["127.0.0.1"], timeout=15, what="A")
        assert d.services()[sid]["Status"] == "passing"

        assert c.exec_run(["busybox", "mv", "/w/index.html", "/w/gone.html"]).exit_code == 0
        wait_until(lambda: dig(port, "cart.service.consul") == [], timeout=15, what="out of DNS")
        assert d.services()[sid]["Status"] == "critical"  # still registered: the container runs
        (changed,) = [e for e in d.events("check_status_changed") if e["status"] == "critical"]
        assert changed["service_id"] == sid
        assert "404" in changed["output"]
        assert 'registrator_catalog_instances{status="critical"} 1.0' in d.get("/metrics").text

        assert c.exec_run(["busybox", "mv", "/w/gone.html", "/w/index.html"]).exit_code == 0
        wait_until(
            lambda: dig(port, "cart.service.consul") == ["127.0.0.1"], timeout=15, what="back"
        )
        d.assert_alive()
    finally:
        d.kill9()


def test_a_taken_dns_port_is_a_startup_failure(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        d = Daemon(tmp_path / "d.log", "-ip", "127.0.0.1")
        d.args += ["--dns-addr", f"127.0.0.1:{port}"]
        d.start()
        assert d.proc is not None
        assert d.proc.wait(30) == 3
    (failure,) = d.events("startup_failed")
    assert f"DNS cannot listen on 127.0.0.1:{port}" in failure["error"]


@contextlib.contextmanager
def edge_host(tmp_path: Path, *args: str) -> Iterator[tuple[Emulator, Daemon, int]]:
    """An emulated Consul and a `--no-register` daemon serving DNS from it: (emulator, daemon,
    DNS port)."""
    emu = Emulator(tmp_path / "emu.log").start()
    port = free_port()
    d = Daemon(tmp_path / "d.log", "--no-register", f"consul://127.0.0.1:{emu.port}")
    d.args += ["--dns-addr", f"127.0.0.1:{port}", *args]
    try:
        d.start()
        d.wait_healthy()
        yield emu, d, port
    finally:
        d.kill9()
        emu.stop()


def register_elsewhere(emu: Emulator, name: str, sid: str, address: str, ttl: bool = True) -> None:
    """What another host's daemon would register (with a passing TTL check unless told not to)."""
    body: dict[str, object] = {"Name": name, "ID": sid, "Address": address, "Port": 8080}
    if ttl:
        body["Check"] = {"TTL": "60s", "Status": "passing"}
    assert requests.put(emu.url + "/v1/agent/service/register", json=body, timeout=5).ok


def test_consul_mode_serves_the_cluster_wide_catalog(tmp_path: Path) -> None:
    """--no-register against Consul (an edge host): services registered by others appear in the
    snapshot and in DNS, from blocking queries; health changes drop critical instances."""
    with edge_host(tmp_path) as (emu, d, port):
        register_elsewhere(emu, "billing", "hostx:billing1:8080", "127.0.0.9")
        wait_until(
            lambda: dig(port, "billing.service.consul") == ["127.0.0.9"],
            timeout=10,
            what="the other host's service in DNS",
        )
        assert "hostx:billing1:8080" in d.services()
        emu.post(
            "/_emulator/check/service:hostx:billing1:8080/status", params={"status": "critical"}
        )
        wait_until(
            lambda: dig(port, "billing.service.consul") == [],
            timeout=10,
            what="critical instance dropped",
        )
        assert d.services()["hostx:billing1:8080"]["Status"] == "critical"


def test_consul_mode_reads_stale_and_keeps_up_without_a_leader(tmp_path: Path) -> None:
    """The watcher's reads carry ?stale, so any server may answer them: while the cluster has no
    leader (an election, a lost quorum) health changes still reach DNS."""
    with edge_host(tmp_path) as (emu, d, port):
        register_elsewhere(emu, "ledger", "hosty:ledger1:8080", "127.0.0.8")
        wait_until(
            lambda: dig(port, "ledger.service.consul") == ["127.0.0.8"], timeout=10, what="A"
        )
        emu.post("/_emulator/no-leader", params={"enable": "true"})
        emu.post(
            "/_emulator/check/service:hosty:ledger1:8080/status", params={"status": "critical"}
        )
        wait_until(lambda: dig(port, "ledger.service.consul") == [], timeout=10, what="dropped")
        reads = emu.get("/_emulator/requests", params={"path": "/v1/health/service/ledger"}).json()
        assert reads
        assert all("stale" in r["query"] for r in reads), reads
        assert not d.events("consul_watch_failed"), d.log_tail()


def test_watch_services_limits_the_snapshot_and_the_queries(tmp_path: Path) -> None:
    """An edge host that serves only some names asks Consul about those names only."""
    with edge_host(tmp_path, "--watch-services", "BILL*,web") as (emu, d, port):
        # ledger first: the catalog answer that brings billing also lists ledger
        register_elsewhere(emu, "ledger", "hostz:ledger1:8080", "127.0.0.7", ttl=False)
        register_elsewhere(emu, "billing", "hostz:billing1:8080", "127.0.0.6", ttl=False)
        wait_until(
            lambda: dig(port, "billing.service.consul") == ["127.0.0.6"], timeout=10, what="A"
        )
        assert set(d.services()) == {"hostz:billing1:8080"}
        assert dig(port, "ledger.service.consul") == []
        health_reads = {
            r["path"] for r in emu.get("/_emulator/requests", params={"path": "/v1/health/"}).json()
        }
        assert health_reads == {"/v1/health/service/billing"}
