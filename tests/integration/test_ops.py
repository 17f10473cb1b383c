"""The ops endpoint: /health, /metrics, and the topology page seen in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.docker_support import ContainerFactory, wait_until
from tests.integration.processes import REPO, TEST_NODE, Daemon, Emulator

pytestmark = pytest.mark.docker
PORTS = {"8080/tcp": ("127.0.0.1", None)}
ARTIFACTS = REPO / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def metric(text: str, name: str) -> float:
    """The value of one sample, `name` with its labels as Prometheus prints them."""
    for line in text.splitlines():
        if line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_metrics_count_what_happened(
    tmp_path: Path, containers: ContainerFactory, busybox_image: str
) -> None:
    d = Daemon(tmp_path / "d.log", "-ip", "127.0.0.1").start()
    try:
        d.wait_healthy()
        c = containers.run(
            busybox_image, ["sleep", "300"], ports=PORTS, environment={"SERVICE_FOO.BAR": "x"}
        )
        wait_until(lambda: any(c.name in s for s in d.services()), timeout=10, what="registered")
        text = d.get("/metrics").text
        assert metric(text, 'registrator_registrations_total{result="ok"}') >= 1
        assert metric(text, 'registrator_docker_events_total{action="start"}') >= 1
        assert metric(text, 'registrator_skips_total{reason="meta_invalid"}') >= 1
        assert metric(text, 'registrator_up{component="docker"}') == 1
        assert metric(text, "registrator_reconcile_duration_seconds_count") >= 1
        assert metric(text, "registrator_registered_services") >= 1
        assert metric(text, "registrator_snapshot_version") >= 1
        assert metric(text, 'registrator_catalog_instances{status="passing"}') >= 1
        assert metric(text, 'registrator_catalog_instances{status="critical"}') == 0
        assert "registrator_snapshot_staleness_seconds" in text
    finally:
        d.kill9()


def test_health_turns_503_with_reasons_when_consul_is_gone(tmp_path: Path) -> None:
    emu = Emulator(tmp_path / "emu.log").start()
    d = Daemon(
        tmp_path / "d.log", "-ip", "127.0.0.1", "-resync", "1", f"consul://127.0.0.1:{emu.port}"
    ).start()
    try:
        d.wait_healthy()
        emu.stop()
        wait_until(lambda: d.get("/health").status_code == 503, timeout=15, what="503")
        body = d.get("/health").json()
        assert body["status"] == "fail"
        assert set(body["problems"]) == {"registry"}
    finally:
        d.kill9()
        emu.stop()


def test_token_is_never_logged(
    tmp_path: Path, containers: ContainerFactory, busybox_image: str
) -> None:
    secret = "tok-9f8e7d6c5b4a"
    emu = Emulator(tmp_path / "emu.log", "--acl-master-token", secret).start()
    d = Daemon(
        tmp_path / "d.log",
        "-ip",
        "127.0.0.1",
        f"consul://127.0.0.1:{emu.port}",
        env={"CONSUL_HTTP_TOKEN": secret},
    ).start()
    try:
        d.wait_healthy()
        c = containers.run(busybox_image, ["sleep", "300"], ports=PORTS)
        sid = f"{TEST_NODE}:{c.name}:8080"
        wait_until(lambda: sid in emu.services(secret), timeout=10, what="registered")
        c.stop(timeout=0)
        wait_until(lambda: sid not in emu.services(secret), timeout=10, what="deregistered")
        log = (tmp_path / "d.log").read_text()
        assert "service_registered" in log
        assert secret not in log
        assert secret not in d.get("/metrics").text + d.get("/v1/catalog").text
    finally:
        d.kill9()
        emu.stop()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_topology_page_in_headless_chromium(
    tmp_path: Path, containers: ContainerFactory, busybox_image: str
) -> None:
    """The page shows host -> container -> service -> instance with health; a screenshot is kept
    in artifacts/status-page.png."""
    d = Daemon(tmp_path / "d.log", "-ip", "127.0.0.1").start()
    try:
        d.wait_healthy()
        web = containers.run(
            busybox_image,
            ["sleep", "300"],
            ports=PORTS,
            environment={"SERVICE_NAME": "shop-web", "SERVICE_TAGS": "v1,blue"},
        )
        api = containers.run(
            busybox_image, ["sleep", "300"], ports=PORTS, environment={"SERVICE_NAME": "<b>api</b>"}
        )
        wait_until(
            lambda: sum(c.name in s for s in d.services() for c in (web, api)) == 2,
            timeout=10,
            what="both registered",
        )
        url = f"http://127.0.0.1:{d.http_port}/"
        profile = tmp_path / "chromium-profile"
        dom = subprocess.run(
            [
                "chromium",
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        assert f'data-node="{TEST_NODE}"' in dom
        assert f'data-container="{web.name}"' in dom
        assert f'data-container="{api.name}"' in dom
        assert "shop-web" in dom
        assert "v1, blue" in dom
        assert 'class="badge passing"' in dom
        assert "<b>api</b>" not in dom  # the sanitised name, and never markup from a label
        count = re.search(r"(\d+) instance\(s\)", dom)
        assert count is not None
        assert int(count.group(1)) >= 2  # other containers on this engine count too
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "status-page.png"
        subprocess.run(
            [
                "chromium",
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                "--window-size=1200,700",
                f"--screenshot={shot}",
                url,
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
        assert shot.stat().st_size > 5000
    finally:
        d.kill9()
