"""deploy/: what can be checked without pulling or building an image.

- the compose file, through the compose tool's own `config` validation;
- the systemd unit, through `systemd-analyze verify` and its offline security score;
- the Dockerfile's posture (non-root USER, HEALTHCHECK, pinned bases);
- the HAProxy reload helper against Debian's haproxy 2.6, in master-worker mode;
- the container's security posture without the container: the daemon as uid 65534 with only the
  Docker socket's group, no capabilities, no-new-privs, no HOME, a read-only root filesystem and a
  tmpfs /tmp (a private mount namespace), answering /health and registering a container."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docker_support import ContainerFactory, http_get, wait_until
from tests.integration.processes import REPO, TEST_NODE, Daemon, free_port

DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
UNIT_FILE = DEPLOY / "registrator.service"
DOCKERFILE = DEPLOY / "Dockerfile"
RELOAD_HELPER = DEPLOY / "haproxy_master_reload.py"
COMPOSE_ENV = {"DOCKER_GID": "999"}
ENGINE_SOCKET = Path("/var/run/docker.sock")
NOBODY = 65534


# --------------------------------------------------------------------------------------------
# Compose


def compose_command() -> list[str] | None:
    """`docker compose` (the v2 plugin) when the CLI has it, else `docker-compose` (Debian 12)."""
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def run_compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    tool = compose_command()
    if tool is None:
        pytest.skip("no compose tool: install Debian's docker-compose (or the compose v2 plugin)")
    return subprocess.run(
        [*tool, "-f", str(COMPOSE_FILE), "--profile", "haproxy", "--profile", "traefik", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **(env if env is not None else COMPOSE_ENV)},
        cwd=REPO,
    )


def test_compose_file_is_valid() -> None:
    result = run_compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_requires_the_docker_socket_group() -> None:
    """Without DOCKER_GID the sidecar could not open the socket: compose refuses to start it."""
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_GID"}
    result = run_compose("config", "-q", env=env)
    assert result.returncode != 0
    assert "DOCKER_GID" in result.stderr


def test_compose_services_are_hardened() -> None:
    yaml = pytest.importorskip("yaml")
    result = run_compose("config")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"consul", "web-1", "web-2", "registrator-haproxy", "haproxy"} <= services.keys()
    assert {"registrator-traefik", "traefik"} <= services.keys()
    for name, svc in services.items():
        image = svc["image"]
        assert ":" in image, f"{name}: pin {image}"
        assert not image.endswith(":latest"), f"{name}: pin {image}"
        if name == "consul":  # the example server's entrypoint switches users itself
            continue
        assert svc.get("read_only") is True, name
        assert svc.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in svc.get("security_opt", []), name
        assert svc.get("network_mode") == "host", name
    for name in ("registrator-haproxy", "registrator-traefik"):
        svc = services[name]
        assert "/var/run/docker.sock:/var/run/docker.sock:ro" in svc["volumes"]
        assert svc["group_add"] == [COMPOSE_ENV["DOCKER_GID"]]
        assert any(t.startswith("/tmp") for t in svc["tmpfs"])
        assert svc["command"][svc["command"].index("--port-env") + 1] == "SERVER_*_PORT"
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
    haproxy_cmd = services["registrator-haproxy"]["command"]
    assert "--haproxy-config" in haproxy_cmd
    assert "--haproxy-reload" in haproxy_cmd
    assert "--traefik-config" in services["registrator-traefik"]["command"]
    assert services["web-1"]["environment"]["SERVER_HTTP_PORT"] == services["web-1"]["command"][1]


# --------------------------------------------------------------------------------------------
# systemd


def unit_directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_systemd_unit_hardening_directives() -> None:
    d = unit_directives(UNIT_FILE.read_text())
    expected = {
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "DynamicUser": ["yes"],
        "SupplementaryGroups": ["docker"],
        "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
        "CapabilityBoundingSet": [""],
        "Restart": ["always"],
        "EnvironmentFile": ["-/etc/registrator/env"],
        "LoadCredential": ["consul-token:/etc/registrator/consul-token"],
    }
    for key, value in expected.items():
        assert d.get(key) == value, f"{key}={d.get(key)}"
    assert "@system-service" in d["SystemCallFilter"]
    assert re.fullmatch(r"\d+[KMG]", d["MemoryMax"][0])
    assert d["ExecStart"][0].split()[1:] == ["--token-file", "%d/consul-token"]


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's console script: `verify` checks that the
    binary exists, and /opt/registrator is where the README installs it, not where tests run."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    script = Path(sys.executable).with_name("registrator")
    if not script.exists():
        pytest.skip(f"no console script at {script}: install the project (pip install -e .)")
    text = UNIT_FILE.read_text().replace("/opt/registrator/bin/registrator", str(script))
    copy = tmp_path / "registrator.service"
    copy.write_text(text)
    return copy


def test_systemd_unit_verifies(unit_copy: Path) -> None:
    """`verify` only warns about unknown keys and bad values: any line about our file fails."""
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit_copy)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    complaints = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if unit_copy.name in line or str(unit_copy) in line
    ]
    assert result.returncode == 0, result.stderr
    assert complaints == []


def test_systemd_unit_exposure_is_ok(unit_copy: Path) -> None:
    """systemd's own score, offline: 2.0 or lower is rated "OK" (0 safe, 10 unsafe)."""
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(unit_copy)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr


# --------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_dockerfile_posture() -> None:
    instructions = dockerfile_instructions()
    args = {
        k: v
        for kw, rest in instructions
        if kw == "ARG" and "=" in rest
        for k, v in [rest.split("=", 1)]
    }
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
        for kw, rest in instructions
        if kw == "FROM"
    ]
    assert bases
    assert all(b.startswith("python:3.11-slim") for b in bases), bases
    assert not any(b.endswith(":latest") or ":" not in b for b in bases), bases
    assert "latest" not in DOCKERFILE.read_text()
    users = [rest for kw, rest in instructions if kw == "USER"]
    assert users, "no USER: the image would run as root"
    final_user = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], users[-1]).split(":")[0]
    assert final_user not in ("root", "0")
    assert int(final_user) > 0
    health = [rest for kw, rest in instructions if kw == "HEALTHCHECK"]
    assert len(health) == 1
    assert "http://127.0.0.1:9180/health" in health[0]
    assert "curl" not in health[0]
    assert "wget" not in health[0]
    envs = " ".join(rest for kw, rest in instructions if kw == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in envs
    assert ("ENTRYPOINT", '["registrator"]') in instructions
    assert any(kw == "RUN" and "pip install" in rest for kw, rest in instructions)


# --------------------------------------------------------------------------------------------
# The HAProxy reload helper, against a real HAProxy 2.6 in master-worker mode

HAPROXY_CFG = """\
global
    log stdout format raw local0
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend web
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain string "{body}"
"""


@pytest.fixture
def haproxy_master(tmp_path: Path) -> Iterator[tuple[Path, Path, int]]:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (Debian package haproxy)")
    port = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG.format(port=port, body="v1"))
    sock = tmp_path / "master.sock"
    log = (tmp_path / "haproxy.log").open("wb")
    proc = subprocess.Popen(
        ["haproxy", "-W", "-db", "-S", f"{sock},mode,600", "-f", str(cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        wait_until(
            lambda: http_get("127.0.0.1", port).body == b"v1",
            timeout=20,
            what="haproxy answering",
            ignore=(OSError,),
        )
        wait_until(sock.exists, timeout=10, what="the master socket")
        yield cfg, sock, port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_helper(sock: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RELOAD_HELPER), str(sock), "20"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_haproxy_reload_helper(haproxy_master: tuple[Path, Path, int]) -> None:
    cfg, sock, port = haproxy_master
    cfg.write_text(HAPROXY_CFG.format(port=port, body="v2"))
    ok = run_helper(sock)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wait_until(
        lambda: http_get("127.0.0.1", port).body == b"v2",
        timeout=10,
        what="the new configuration serving",
        ignore=(OSError,),
    )
    cfg.write_text(cfg.read_text() + "    no-such-keyword\n")
    refused = run_helper(sock)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "refused" in refused.stdout
    assert http_get("127.0.0.1", port).body == b"v2"  # the old worker keeps serving


def test_haproxy_reload_helper_without_haproxy(tmp_path: Path) -> None:
    result = run_helper(tmp_path / "absent.sock")
    assert result.returncode == 2
    assert "absent.sock" in result.stderr


# --------------------------------------------------------------------------------------------
# The container's posture without a container


def confinement_prefix(docker_gid: int) -> list[str]:
    """A private mount namespace with / read-only and a fresh tmpfs /tmp, then uid/gid 65534 with
    the socket's group only, no capabilities (bounding set emptied), no-new-privs, and an
    environment without HOME: what `--read-only --tmpfs /tmp --user 65534 --group-add GID
    --cap-drop ALL --security-opt no-new-privileges` gives the image."""
    setup = (
        'mount -o remount,bind,ro / && mount -t tmpfs -o size=16m,mode=1777 tmpfs /tmp && exec "$@"'
    )
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        setup,
        "confine",
        "setpriv",
        f"--reuid={NOBODY}",
        f"--regid={NOBODY}",
        f"--groups={docker_gid}",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "env",
        "-i",
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "LANG=C.UTF-8",
        "PYTHONDONTWRITEBYTECODE=1",
        # The venv's packages and the checkout, for an interpreter outside the venv (below)
        f"PYTHONPATH={sysconfig.get_paths()['purelib']}:{REPO}",
    ]


@dataclass(frozen=True)
class Confinement:
    docker_gid: int
    python: str  # an interpreter uid 65534 can execute


class ConfinedDaemon(Daemon):
    def __init__(self, log_path: Path, *args: str, confinement: Confinement) -> None:
        super().__init__(log_path, *args)
        self.confinement = confinement

    @property
    def command(self) -> list[str]:
        _, *rest = super().command
        prefix = confinement_prefix(self.confinement.docker_gid)
        return [*prefix, self.confinement.python, *rest]


@pytest.fixture
def confinement() -> Confinement:
    """How to run the daemon confined here. The venv's interpreter may live where uid 65534
    cannot reach it (pyenv under /root); the system's python3.X of the same minor version is then
    used with the venv's packages, as the image uses its base's /usr/local/bin/python3."""
    if os.geteuid() != 0:
        pytest.skip("needs root to set up the mount namespace and switch to uid 65534")
    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian package util-linux)")
    if not ENGINE_SOCKET.is_socket():
        pytest.skip(f"the engine is not on {ENGINE_SOCKET}")
    gid = ENGINE_SOCKET.stat().st_gid
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    errors = []
    for python in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        probe = subprocess.run(
            [*confinement_prefix(gid), python, "-c", "import aiodocker, uvloop, registrator"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd=REPO,
        )
        if probe.returncode == 0:
            return Confinement(gid, python)
        errors.append(f"{python}: {probe.stderr.strip()[-300:]}")
    pytest.skip(
        "no interpreter that uid 65534 can run the project with, in a read-only mount namespace "
        "(are the checkout's parent directories world-readable?): " + "; ".join(errors)
    )


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


@pytest.mark.docker
def test_daemon_runs_unprivileged_on_a_read_only_root(
    tmp_path: Path, confinement: Confinement, containers: ContainerFactory, busybox_image: str
) -> None:
    d = ConfinedDaemon(tmp_path / "daemon.log", "-ip", "127.0.0.1", confinement=confinement)
    d.start()
    try:
        d.wait_healthy()
        assert d.proc is not None
        status = proc_status(d.proc.pid)
        assert status["Uid"].split() == [str(NOBODY)] * 4
        assert status["Gid"].split() == [str(NOBODY)] * 4
        assert status["Groups"].split() == [str(confinement.docker_gid)]
        assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == 0
        assert int(status["CapBnd"], 16) == 0
        assert status["NoNewPrivs"] == "1"
        environ = Path(f"/proc/{d.proc.pid}/environ").read_bytes().split(b"\0")
        assert not any(e.startswith(b"HOME=") for e in environ)
        root = next(
            line.split()
            for line in Path(f"/proc/{d.proc.pid}/mountinfo").read_text().splitlines()
            if line.split()[4] == "/"
        )
        assert "ro" in root[5].split(","), root

        c = containers.run(busybox_image, ["sleep", "300"], ports={"8080/tcp": ("127.0.0.1", None)})
        sid = f"{TEST_NODE}:{c.name}:8080"
        wait_until(lambda: sid in d.services(), timeout=15, what="registration")
        c.stop(timeout=0)
        wait_until(lambda: sid not in d.services(), timeout=15, what="deregistration")
        health = d.get("/health")
        assert health.status_code == 200, health.text
        assert json.loads(health.text)["status"] == "ok"
        assert d.stop() == 0
    finally:
        d.kill9()
