"""The daemon itself drives HAProxy: containers it finds are routed by Host header; a stopped
container leaves the rotation through the Runtime API, without a failed request.

Skipped until `registrator.daemon` starts the proxy writer (`run_proxy_writer` / `ProxyWriter`).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import registrator.daemon
from registrator.proxy_config import RoutingModel, render_haproxy
from registrator.proxy_config.haproxy import HaproxyOptions, parse_servers_state
from tests.docker_support import ContainerFactory, host_port, wait_http, wait_until
from tests.integration.processes import TEST_NODE, Daemon
from tests.proxy.support import Haproxy, Load, free_port, get, httpd_command, unix_command

DAEMON_WIRED = any(
    name in inspect.getsource(registrator.daemon) for name in ("run_proxy_writer", "ProxyWriter")
)
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        not DAEMON_WIRED, reason="registrator.daemon does not start the proxy writer yet"
    ),
]
HOST = "web.test"


def test_daemon_routes_found_containers_and_drops_a_stopped_one(
    tmp_path: Path,
    containers: ContainerFactory,
    busybox_image: str,
    haproxy_process: Callable[[Path], Haproxy],
    record_property: Callable[[str, object], None],
) -> None:
    port = free_port()
    config, sock = tmp_path / "haproxy.cfg", tmp_path / "admin.sock"
    # HAProxy starts first on what the writer renders for an empty catalog
    empty = render_haproxy(RoutingModel(), HaproxyOptions("127.0.0.1", port, str(sock)))
    config.write_text(empty.text)
    h = haproxy_process(config)
    daemon = Daemon(
        tmp_path / "daemon.log",
        "-ip",
        "127.0.0.1",
        "--haproxy-config",
        str(config),
        "--haproxy-bind",
        f"127.0.0.1:{port}",
        "--haproxy-reload",
        h.reload_command,
        "--haproxy-socket",
        str(sock),
        "--proxy-wait",
        "0.05:0.5",
    ).start()
    try:
        daemon.wait_healthy()
        env = {
            "SERVICE_NAME": "web",
            "SERVICE_TAGS": f"traefik.enable=true,traefik.http.routers.web.rule=Host(`{HOST}`)",
        }
        started = []
        for text in ("alpha", "beta"):
            c = containers.run(
                busybox_image,
                httpd_command(text),
                environment=env,
                ports={"8080/tcp": ("127.0.0.1", None)},
            )
            wait_http("127.0.0.1", host_port(c, "8080/tcp"), timeout=20)
            started.append(c)

        def served() -> set[str]:
            return {get(port, HOST)[1].strip().decode() for _ in range(6)}

        wait_until(
            lambda: served() == {"alpha", "beta"},
            timeout=30,
            what="both containers",
            ignore=(OSError,),
        )
        reloads_before = h.reloads()
        beta_id = f"{TEST_NODE}:{started[1].name}:8080"
        with Load(port, HOST) as load:
            load.wait_requests(50)
            t0 = time.monotonic()
            started[1].stop(timeout=0)
            wait_until(
                lambda: (
                    beta_id
                    not in {
                        name
                        for (_, name), s in parse_servers_state(
                            unix_command(sock, "show servers state be_web")
                        ).items()
                        if not s.in_maint
                    }
                ),
                timeout=15,
                interval=0.02,
                what="beta out of rotation",
            )
            elapsed = time.monotonic() - t0
            load.wait_requests(50)
        record_property("daemon_out_of_rotation_s", round(elapsed, 3))
        print(f"\ndaemon: stopped container out of rotation after {elapsed:.3f}s")
        # only a response cut by the kill itself may fail (see test_haproxy_e2e)
        assert load.failed <= load.threads, (load.statuses, load.errors[:5])
        assert h.reloads() == reloads_before  # a server change: Runtime API, no reload
        assert served() == {"alpha"}
    finally:
        daemon.kill9()
