"""dockerd restarted under the running daemon: the event stream ends, the daemon reconnects with
backoff, resyncs, and the registry converges on what the engine runs afterwards."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.docker_support import ContainerFactory, wait_until
from tests.integration.processes import TEST_NODE, Daemon

pytestmark = pytest.mark.docker


def dockerd_pid() -> int | None:
    out = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, check=False)
    pids = out.stdout.split()
    return int(pids[0]) if pids else None


def engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def restart_dockerd(log: Path) -> None:
    """Stop dockerd and start it again with the same command line (CI starts it by hand)."""
    pid = dockerd_pid()
    if pid is None:
        pytest.skip("dockerd is not a local process here (remote engine?)")
    if (
        shutil.which("systemctl")
        and subprocess.run(["systemctl", "is-active", "--quiet", "docker"], check=False).returncode
        == 0
    ):
        subprocess.run(["systemctl", "restart", "docker"], check=True)
    else:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        argv = [a.decode() for a in cmdline if a]
        os.kill(pid, 15)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=60, what="dockerd exit")
        # Through a shell that backgrounds it: dockerd outlives the test, as CI's did.
        line = f"nohup {shlex.join(argv)} >>{shlex.quote(str(log))} 2>&1 &"
        subprocess.run(["setsid", "sh", "-c", line], check=True)
    wait_until(engine_answers, timeout=60, interval=0.5, what="dockerd back")


def test_dockerd_restart_under_the_daemon(
    tmp_path: Path, containers: ContainerFactory, busybox_image: str
) -> None:
    d = Daemon(tmp_path / "d.log", "-ip", "127.0.0.1").start()
    try:
        d.wait_healthy()
        ports = {"8080/tcp": ("127.0.0.1", None)}
        survivor = containers.run(
            busybox_image, ["sleep", "3000"], ports=ports, restart_policy={"Name": "always"}
        )
        casualty = containers.run(busybox_image, ["sleep", "3000"], ports=ports)
        ids = {f"{TEST_NODE}:{c.name}:8080" for c in (survivor, casualty)}
        wait_until(lambda: ids <= d.services().keys(), timeout=15, what="both registered")
        lost_before = len(d.events("docker_unavailable"))
        restart_dockerd(tmp_path / "dockerd.log")
        started = time.monotonic()
        # The engine stopped every container; only the restart=always one came back, on a new port.
        wait_until(
            lambda: len(d.events("docker_unavailable")) > lost_before,
            timeout=30,
            what="the daemon to notice",
        )
        survivor.reload()
        wait_until(
            lambda: survivor.reload() or survivor.status == "running",
            timeout=60,
            what="survivor running again",
        )
        port = int(survivor.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])
        want = {f"{TEST_NODE}:{survivor.name}:8080"}

        def converged() -> bool:
            mine = {k: v for k, v in d.services().items() if k in ids}
            return mine.keys() == want and mine[next(iter(want))]["Port"] == port

        wait_until(
            converged,
            timeout=60,
            interval=0.5,
            what="convergence after the restart",
            ignore=(OSError,),
        )
        assert time.monotonic() - started < 120
        d.assert_alive()
    finally:
        d.kill9()
