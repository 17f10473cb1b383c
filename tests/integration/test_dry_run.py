"""`registrator --dry-run` against containers on the real engine: stdout is the JSON array of
registration bodies, stderr has one line per skipped container or port, exit 0."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.docker_support import ContainerFactory
from tests.integration.processes import REPO

pytestmark = pytest.mark.docker
NODE = "dryrun"


def dry_run(*args: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "registrator",
            "--dry-run",
            "--node",
            NODE,
            "--log-format",
            "json",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    skips = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    return json.loads(proc.stdout), skips


def of(bodies: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return sorted((b for b in bodies if f":{name}:" in b["ID"]), key=lambda b: b["ID"])


def test_bridge_conventions(containers: ContainerFactory, image_factory: Any) -> None:
    """Published ports, SERVICE_* from env and labels, per-port overrides, UDP, checks."""
    image = image_factory("localhost:5000/regtest/shop:2", ["EXPOSE 8080/tcp 9090/tcp 53/udp"])
    c = containers.run(
        image,
        ports={
            "8080/tcp": ("127.0.0.1", None),
            "9090/tcp": ("127.0.0.1", None),
            "53/udp": ("127.0.0.1", None),
        },
        environment={
            "SERVICE_TAGS": "env",
            "SERVICE_9090_NAME": "shop-metrics",
            "SERVICE_CHECK_HTTP": "/health",
            "SERVICE_REGION": "eu",
        },
        labels={"SERVICE_TAGS": "label,x\\,y"},
    )
    c.reload()
    port = {k: int(v[0]["HostPort"]) for k, v in c.attrs["NetworkSettings"]["Ports"].items()}
    bodies, _ = dry_run("-ip", "127.0.0.1", "-tags", "global")
    assert of(bodies, c.name) == [
        {
            "ID": f"{NODE}:{c.name}:53:udp",
            "Name": "shop-53",
            "Tags": ["label", "x,y", "global", "udp"],
            "Address": "127.0.0.1",
            "Port": port["53/udp"],
            "Meta": {"region": "eu"},
            "Check": {"HTTP": f"http://127.0.0.1:{port['53/udp']}/health", "Interval": "10s"},
        },
        {
            "ID": f"{NODE}:{c.name}:8080",
            "Name": "shop-8080",
            "Tags": ["label", "x,y", "global"],
            "Address": "127.0.0.1",
            "Port": port["8080/tcp"],
            "Meta": {"region": "eu"},
            "Check": {"HTTP": f"http://127.0.0.1:{port['8080/tcp']}/health", "Interval": "10s"},
        },
        {
            "ID": f"{NODE}:{c.name}:9090",
            "Name": "shop-metrics",
            "Tags": ["label", "x,y", "global"],
            "Address": "127.0.0.1",
            "Port": port["9090/tcp"],
            "Meta": {"region": "eu"},
            "Check": {"HTTP": f"http://127.0.0.1:{port['9090/tcp']}/health", "Interval": "10s"},
        },
    ]


def test_host_network_env_ports_and_skips(containers: ContainerFactory, busybox_image: str) -> None:
    """--port-env SERVER_*_PORT: <name>-<label> per port; bad values are skipped with a reason."""
    tomcat = containers.run(
        busybox_image,
        network_mode="host",
        environment={
            "SERVICE_NAME": "tomcat",
            "SERVER_HTTP_PORT": "31080",
            "SERVER_AJP_PORT": "31009",
            "SERVER_BAD_PORT": "70000",
        },
    )
    bodies, skips = dry_run("-ip", "127.0.0.1", "--port-env", "SERVER_*_PORT")
    assert [(b["Name"], b["Port"], b["Address"]) for b in of(bodies, tomcat.name)] == [
        ("tomcat-ajp", 31009, "127.0.0.1"),
        ("tomcat-http", 31080, "127.0.0.1"),
    ]
    mine = [s for s in skips if s.get("container") == tomcat.name]
    assert [(s["event"], s["reason"], s["port"]) for s in mine] == [
        ("port_skipped", "invalid_port", "SERVER_BAD_PORT")
    ]


def test_host_network_exposed_ports(containers: ContainerFactory, image_factory: Any) -> None:
    """No env var matches: the EXPOSEd ports, on the host address."""
    image = image_factory("localhost:5000/regtest/metrics:1", ["EXPOSE 9100/tcp"])
    c = containers.run(image, network_mode="host")
    bodies, _ = dry_run("-ip", "127.0.0.1")
    assert [(b["ID"], b["Name"], b["Port"]) for b in of(bodies, c.name)] == [
        (f"{NODE}:{c.name}:9100", "metrics", 9100)
    ]


def test_exposed_only_needs_internal(containers: ContainerFactory, image_factory: Any) -> None:
    image = image_factory("localhost:5000/regtest/api:1", ["EXPOSE 8080/tcp"])
    c = containers.run(image)
    c.reload()
    ip = c.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    bodies, skips = dry_run()
    assert of(bodies, c.name) == []
    assert any(s["container"] == c.name and s["reason"] == "not_published" for s in skips)
    bodies, _ = dry_run("-internal")
    assert [(b["Address"], b["Port"]) for b in of(bodies, c.name)] == [(ip, 8080)]


def test_bad_containers_do_not_affect_others(
    containers: ContainerFactory, busybox_image: str
) -> None:
    ports = {"8080/tcp": ("127.0.0.1", None)}
    bad = containers.run(
        busybox_image,
        ports=ports,
        environment={
            "SERVICE_CHECK_HTTP": "/x",
            "SERVICE_CHECK_INTERVAL": "soon",
            "SERVICE_FOO.BAR": "1",
        },
    )
    good = containers.run(busybox_image, ports=ports, environment={"SERVICE_NAME": "good"})
    bodies, skips = dry_run("-ip", "127.0.0.1")
    assert of(bodies, bad.name) == []
    assert [b["Name"] for b in of(bodies, good.name)] == ["good"]
    reasons = {s["reason"] for s in skips if s.get("container") == bad.name}
    assert "invalid_check" in reasons
    assert not [s for s in skips if s.get("container") == good.name]


def test_bad_flags_exit_2_listing_every_problem() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "registrator", "-ip", "x", "-ttl", "3", "--nope", "ftp://a"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    for needle in ("-ip: 'x'", "-ttl and -ttl-refresh", "'--nope'", "'ftp'"):
        assert needle in proc.stderr


def test_no_engine_is_a_startup_failure() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "registrator", "--dry-run"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
        env={"DOCKER_HOST": "unix:///nonexistent.sock", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 3
    assert "docker_unavailable" in proc.stderr
