"""Helpers for tests that talk to a real Docker engine.

Nothing here pulls from a registry: images are made with ``docker import`` from a rootfs
tarball built in memory around Debian's static busybox (package ``busybox-static``).

Everything a test creates carries the label ``io.registrator.test=1`` plus the session and
owner labels below, so leftovers can be swept without touching containers of another test
session that shares the same engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import os
import secrets
import socket
import struct
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.models.networks import Network

T = TypeVar("T")

REQUIRE_DOCKER_ENV = "REGISTRATOR_REQUIRE_DOCKER"
BUSYBOX_ENV = "REGISTRATOR_TEST_BUSYBOX"

TEST_LABEL = "io.registrator.test"
SESSION_LABEL = "io.registrator.test.session"
OWNER_LABEL = "io.registrator.test.owner"
IMAGE_INPUTS_LABEL = "io.registrator.test.image-inputs"

BUSYBOX_TAG = "registrator-test/busybox:latest"
BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))
APPLETS = ("sh", "sleep", "httpd", "nc", "echo", "cat", "true", "false", "wget", "ls", "env")
DEFAULT_CMD = 'CMD ["/bin/sleep","3600"]'
DEFAULT_PATH_ENV = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Bump when the rootfs layout or the default changes change in a way the hash would not see.
ROOTFS_LAYOUT_VERSION = "1"

# One id per test process: what this session created is what its final sweep removes.
SESSION_ID = secrets.token_hex(6)


class DockerUnavailableError(RuntimeError):
    """The Docker engine did not answer."""


class BusyboxMissingError(RuntimeError):
    """No static busybox binary to put in the test image."""


# --------------------------------------------------------------------------------------------
# Engine connection
# --------------------------------------------------------------------------------------------


def docker_required() -> bool:
    """True when ``REGISTRATOR_REQUIRE_DOCKER`` asks for a failure instead of a skip."""
    return os.environ.get(REQUIRE_DOCKER_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _preflight(docker_host: str, timeout: float) -> None:
    """Open and close a plain socket to the engine before the SDK does.

    The SDK leaks its socket when a unix-socket connect fails, which pytest's
    ``filterwarnings=error`` would turn into a ResourceWarning error at exit.
    """
    if docker_host.startswith("unix://") or not docker_host:
        path = docker_host.removeprefix("unix://") or "/var/run/docker.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
    elif docker_host.startswith("tcp://"):
        host, _, port = docker_host.removeprefix("tcp://").split("/", 1)[0].rpartition(":")
        with socket.create_connection((host.strip("[]"), int(port or "2375")), timeout=timeout):
            pass


def connect(probe_timeout: float = 10.0, timeout: float = 120.0) -> docker.DockerClient:
    """A client from the environment (``DOCKER_HOST`` etc.) that has answered a ping.

    Raises:
        DockerUnavailableError: the engine is unreachable or misconfigured.
    """
    docker_host = os.environ.get("DOCKER_HOST", "")
    where = docker_host or "unix:///var/run/docker.sock"
    errors = (docker.errors.DockerException, requests.RequestException, OSError, ValueError)
    try:
        _preflight(docker_host, probe_timeout)
        # A fixed, old API version: no request is made while constructing the client.
        probe = docker.from_env(version="1.24", timeout=int(probe_timeout))
    except errors as exc:
        raise DockerUnavailableError(f"cannot reach the Docker engine at {where}: {exc}") from exc
    try:
        probe.ping()
        api_version = str(probe.version()["ApiVersion"])
    except (*errors, KeyError) as exc:
        raise DockerUnavailableError(f"Docker engine at {where} did not answer: {exc}") from exc
    finally:
        probe.close()
    try:
        return docker.from_env(version=api_version, timeout=int(timeout))
    except errors as exc:
        raise DockerUnavailableError(f"cannot reach the Docker engine at {where}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def _elf_interpreter_present(data: bytes) -> bool:
    """True when the ELF binary asks for a dynamic loader (has a PT_INTERP segment)."""
    if data[:4] != b"\x7fELF":
        raise BusyboxMissingError("busybox is not an ELF binary")
    elf_class, endian = data[4], data[5]
    order = "<" if endian == 1 else ">"
    if elf_class == 2:  # 64-bit
        (phoff,) = struct.unpack_from(order + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 0x36)
    else:
        (phoff,) = struct.unpack_from(order + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 0x2A)
    pt_interp = 3
    for index in range(phnum):
        (p_type,) = struct.unpack_from(order + "I", data, phoff + index * phentsize)
        if p_type == pt_interp:
            return True
    return False


def find_busybox() -> Path:
    """The static busybox to copy into test images.

    ``$REGISTRATOR_TEST_BUSYBOX`` wins; otherwise Debian's ``busybox-static`` location.
    """
    override = os.environ.get(BUSYBOX_ENV)
    candidates = (Path(override),) if override else BUSYBOX_CANDIDATES
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise BusyboxMissingError(
        f"no busybox binary at {looked}: install Debian's static one "
        "(`apt-get install busybox-static`) or point $REGISTRATOR_TEST_BUSYBOX at a static busybox"
    )


@lru_cache(maxsize=4)
def _rootfs_tarball_for(path: Path, mtime_ns: int, size: int) -> bytes:
    data = path.read_bytes()
    if _elf_interpreter_present(data):
        raise BusyboxMissingError(
            f"{path} is dynamically linked and would not run in an empty image: "
            "install Debian's `busybox-static` (it replaces `busybox`)"
        )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, kind: bytes, mode: int, payload: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = mode
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.linkname = link
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload else None)

        for directory in ("bin", "dev", "etc", "proc", "sys", "var", "var/www"):
            add(directory, tarfile.DIRTYPE, 0o755)
        add("tmp", tarfile.DIRTYPE, 0o1777)
        add("bin/busybox", tarfile.REGTYPE, 0o755, data)
        for applet in APPLETS:
            add(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
        add("etc/passwd", tarfile.REGTYPE, 0o644, b"root:x:0:0:root:/:/bin/sh\n")
        add("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\n")
        add("var/www/index.html", tarfile.REGTYPE, 0o644, b"registrator-test\n")
    return buf.getvalue()


def rootfs_tarball() -> bytes:
    """A deterministic rootfs tarball: /bin/busybox plus applet symlinks, /tmp, /etc/passwd."""
    path = find_busybox()
    stat = path.stat()
    return _rootfs_tarball_for(path, stat.st_mtime_ns, stat.st_size)


def normalize_tag(tag: str) -> tuple[str, str]:
    """``repo[:tag]`` -> ``(repo, tag)``, defaulting the tag to ``latest``."""
    repository, _, maybe_tag = tag.rpartition(":")
    if not repository or "/" in maybe_tag:
        return tag, "latest"
    return repository, maybe_tag


def image_changes(changes: Sequence[str] = ()) -> list[str]:
    """The ``docker import --change`` list: defaults first, then the caller's instructions."""
    user = [c.strip() for c in changes if c.strip()]
    keywords = {c.split(None, 1)[0].upper() for c in user}
    result: list[str] = []
    if not any(c.upper().startswith("ENV PATH=") for c in user):
        result.append(DEFAULT_PATH_ENV)
    if "CMD" not in keywords:
        result.append(DEFAULT_CMD)
    result.extend(user)
    return result


def _import_stream_error(result: object) -> str | None:
    """The error in an ``/images/create`` progress stream, if there is one."""
    text = result if isinstance(result, str) else json.dumps(result)
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and (message.get("error") or message.get("errorDetail")):
            return str(message.get("error") or message.get("errorDetail"))
    return None


def build_busybox_image(client: docker.DockerClient, tag: str, changes: Sequence[str] = ()) -> str:
    """Import a busybox rootfs as ``tag`` with Dockerfile-like ``changes``; return the tag.

    ``changes`` are ``docker import --change`` instructions (``EXPOSE 8080/tcp``,
    ``CMD ["..."]``, ``ENV K=V``, ``LABEL K=V``...). The default command is
    ``["/bin/sleep","3600"]`` and ``PATH`` is set as in ordinary images. A hash of the rootfs and
    the changes is stored in the ``io.registrator.test.image-inputs`` label: when ``tag`` already
    carries the same hash the existing image is reused.
    """
    repository, image_tag = normalize_tag(tag)
    full_tag = f"{repository}:{image_tag}"
    tarball = rootfs_tarball()
    wanted = image_changes(changes)
    digest = hashlib.sha256()
    digest.update(ROOTFS_LAYOUT_VERSION.encode())
    digest.update(hashlib.sha256(tarball).digest())
    digest.update(json.dumps(wanted).encode())
    inputs_hash = digest.hexdigest()[:32]

    with contextlib.suppress(docker.errors.ImageNotFound):
        existing = client.images.get(full_tag)
        if (existing.labels or {}).get(IMAGE_INPUTS_LABEL) == inputs_hash:
            return full_tag

    all_changes = [*wanted, f"LABEL {IMAGE_INPUTS_LABEL}={inputs_hash}"]
    try:
        result = client.api.import_image_from_data(
            tarball, repository=repository, tag=image_tag, changes=all_changes
        )
    except docker.errors.APIError as exc:
        raise RuntimeError(f"docker import of {full_tag} failed: {exc}") from exc
    error = _import_stream_error(result)
    if error:
        raise RuntimeError(f"docker import of {full_tag} failed: {error}")
    built = client.images.get(full_tag)
    if (built.labels or {}).get(IMAGE_INPUTS_LABEL) != inputs_hash:
        raise RuntimeError(f"docker import of {full_tag} did not produce the expected image")
    return full_tag


class ImageFactory(Protocol):
    """Signature of the ``image_factory`` fixture."""

    def __call__(self, tag: str, changes: Sequence[str] = ()) -> str: ...


def make_image_factory(client: docker.DockerClient) -> ImageFactory:
    """A memoizing :func:`build_busybox_image` bound to ``client``."""
    built: dict[tuple[str, tuple[str, ...]], str] = {}

    def factory(tag: str, changes: Sequence[str] = ()) -> str:
        key = (tag, tuple(changes))
        if key not in built:
            built[key] = build_busybox_image(client, tag, changes)
        return built[key]

    return factory


# --------------------------------------------------------------------------------------------
# Containers and networks
# --------------------------------------------------------------------------------------------


def random_name(prefix: str = "regtest") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def session_labels(session_id: str = SESSION_ID) -> dict[str, str]:
    """Labels that mark a resource as made by this test session."""
    return {
        TEST_LABEL: "1",
        SESSION_LABEL: session_id,
        OWNER_LABEL: f"{socket.gethostname()}/{os.getpid()}",
    }


def _labels_dict(labels: Mapping[str, str] | Iterable[str] | None) -> dict[str, str]:
    if labels is None:
        return {}
    if isinstance(labels, Mapping):
        return {str(k): str(v) for k, v in labels.items()}
    return {str(k): "" for k in labels}


def _api_error_text(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc).lower()


def force_remove_container(client: docker.DockerClient, ident: str, timeout: float = 30.0) -> None:
    """``docker rm -f -v``; a container that is already gone is fine."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.api.remove_container(ident, force=True, v=True)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            # Another remover got there first, or the engine is still tearing it down.
            if "in progress" not in _api_error_text(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def force_remove_network(client: docker.DockerClient, ident: str) -> None:
    """Remove a network, disconnecting whatever is still attached; gone already is fine."""
    try:
        client.api.remove_network(ident)
        return
    except docker.errors.NotFound:
        return
    except docker.errors.APIError:
        pass  # most likely active endpoints: disconnect them and retry once
    try:
        attached = client.api.inspect_network(ident).get("Containers") or {}
        for container_id in attached:
            with contextlib.suppress(docker.errors.NotFound):
                client.api.disconnect_container_from_network(container_id, ident, force=True)
        client.api.remove_network(ident)
    except docker.errors.NotFound:
        return


def _owner_is_gone(labels: Mapping[str, str]) -> bool:
    """True for resources whose creating process (on this host) no longer exists."""
    owner = labels.get(OWNER_LABEL)
    if not owner:
        return True
    host, _, pid_text = owner.rpartition("/")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine's session: not ours to judge
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def sweep(client: docker.DockerClient, session_id: str | None = SESSION_ID) -> list[str]:
    """Remove labelled test containers, then networks, of ``session_id`` or of dead sessions.

    Resources of test sessions still running elsewhere against the same engine are left alone.
    Returns the names of what was removed.
    """
    removed: list[str] = []

    def ours(labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        if labels.get(TEST_LABEL) != "1":
            return False
        return (session_id is not None and labels.get(SESSION_LABEL) == session_id) or (
            _owner_is_gone(labels)
        )

    for summary in client.api.containers(all=True, filters={"label": f"{TEST_LABEL}=1"}):
        if ours(summary.get("Labels")):
            force_remove_container(client, summary["Id"])
            removed.extend(n.lstrip("/") for n in summary.get("Names") or [summary["Id"]])
    for network in client.api.networks(filters={"label": f"{TEST_LABEL}=1"}):
        if ours(network.get("Labels")):
            force_remove_network(client, network["Id"])
            removed.append(network["Name"])
    return removed


class ContainerFactory:
    """Starts containers and networks for one test and removes all of them afterwards.

    ``run``/``create`` wrap ``client.containers.run(detach=True)``/``client.containers.create``:
    the name defaults to ``regtest-<8 hex>`` and the session labels are always added.
    ``cleanup`` force-removes the containers (with their anonymous volumes) and then the
    networks; it is idempotent and is what the ``containers`` fixture calls at teardown.
    """

    def __init__(self, client: docker.DockerClient, labels: Mapping[str, str] | None = None):
        self.client = client
        self.labels: dict[str, str] = dict(session_labels() if labels is None else labels)
        self._container_ids: list[str] = []
        self._network_ids: list[str] = []

    @property
    def container_ids(self) -> list[str]:
        return list(self._container_ids)

    @property
    def network_ids(self) -> list[str]:
        return list(self._network_ids)

    def _prepare(self, kwargs: dict[str, Any]) -> str:
        name = kwargs.pop("name", None) or random_name()
        kwargs["labels"] = {**_labels_dict(kwargs.get("labels")), **self.labels}
        return str(name)

    def _recover_half_created(self, name: str) -> None:
        """A create that succeeded followed by a failed start still leaves a container."""
        try:
            leftover = self.client.api.inspect_container(name)
        except docker.errors.NotFound:
            return
        labels = leftover["Config"].get("Labels") or {}
        if all(labels.get(k) == v for k, v in self.labels.items()):
            self._container_ids.append(leftover["Id"])

    def create(
        self, image: str, command: str | Sequence[str] | None = None, **kwargs: Any
    ) -> Container:
        """``client.containers.create`` (not started) with a tracked name and the test labels."""
        name = self._prepare(kwargs)
        try:
            container = self.client.containers.create(image, command, name=name, **kwargs)
        except docker.errors.APIError:
            self._recover_half_created(name)
            raise
        self._container_ids.append(container.id)
        return container

    def run(
        self, image: str, command: str | Sequence[str] | None = None, **kwargs: Any
    ) -> Container:
        """``client.containers.run(detach=True)`` with a tracked name and the test labels."""
        if kwargs.pop("detach", True) is not True:
            raise ValueError("ContainerFactory.run always detaches")
        name = self._prepare(kwargs)
        try:
            container = self.client.containers.run(image, command, name=name, detach=True, **kwargs)
        except docker.errors.APIError:
            self._recover_half_created(name)
            raise
        self._container_ids.append(container.id)
        return container

    def network(self, name: str | None = None, **kwargs: Any) -> Network:
        """``client.networks.create`` with the test labels; removed after the containers."""
        kwargs["labels"] = {**_labels_dict(kwargs.get("labels")), **self.labels}
        kwargs.setdefault("check_duplicate", True)
        network = self.client.networks.create(name or random_name("regtest-net"), **kwargs)
        self._network_ids.append(network.id)
        return network

    def cleanup(self) -> None:
        """Force-remove every container, then every network, this factory made."""
        errors: list[str] = []
        while self._container_ids:
            ident = self._container_ids.pop()
            try:
                force_remove_container(self.client, ident)
            except (docker.errors.APIError, requests.RequestException) as exc:
                errors.append(f"container {ident[:12]}: {exc}")
        while self._network_ids:
            ident = self._network_ids.pop()
            try:
                force_remove_network(self.client, ident)
            except (docker.errors.APIError, requests.RequestException) as exc:
                errors.append(f"network {ident[:12]}: {exc}")
        if errors:
            raise RuntimeError("test cleanup left Docker resources behind: " + "; ".join(errors))

    def __enter__(self) -> ContainerFactory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()


# --------------------------------------------------------------------------------------------
# Waiting
# --------------------------------------------------------------------------------------------


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``probe`` until it returns something truthy, which is returned; poll, never sleep."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = probe()
            if result:
                return result
        except ignore as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def _container_state(container: Container) -> dict[str, Any]:
    container.reload()
    state: dict[str, Any] = container.attrs["State"]
    if state.get("Status") in {"exited", "dead"}:
        logs = container.logs(tail=20).decode(errors="replace")
        raise RuntimeError(
            f"container {container.name} stopped (exit {state.get('ExitCode')}): {logs.strip()}"
        )
    return state


def wait_running(container: Container, timeout: float = 30.0) -> Container:
    """Block until the container's state is ``running``."""
    wait_until(
        lambda: _container_state(container).get("Status") == "running",
        timeout=timeout,
        what=f"container {container.name} to run",
    )
    return container


def wait_healthy(container: Container, timeout: float = 60.0) -> Container:
    """Block until Docker's healthcheck reports ``healthy``."""
    wait_until(
        lambda: (_container_state(container).get("Health") or {}).get("Status") == "healthy",
        timeout=timeout,
        interval=0.25,
        what=f"container {container.name} to be healthy",
    )
    return container


def host_port(container: Container, port: str, host_ip: str = "127.0.0.1") -> int:
    """The host port that ``port`` (``"8080/tcp"``) is published on at ``host_ip``."""
    container.reload()
    bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get(port) or []
    for binding in bindings:
        if binding.get("HostIp") in {host_ip, ""}:
            return int(binding["HostPort"])
    raise LookupError(f"{container.name}: {port} is not published on {host_ip}: {bindings}")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes


def http_get(host: str, port: int, path: str = "/", timeout: float = 2.0) -> HttpResponse:
    """One plain HTTP GET without any proxy settings."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return HttpResponse(response.status, response.read())
    finally:
        conn.close()


def wait_http(
    host: str, port: int, path: str = "/", timeout: float = 30.0, status: int | None = 200
) -> HttpResponse:
    """Poll until ``GET path`` answers (with ``status`` unless it is None)."""

    def probe() -> HttpResponse | None:
        response = http_get(host, port, path)
        return response if status is None or response.status == status else None

    return wait_until(
        probe,
        timeout=timeout,
        interval=0.1,
        what=f"HTTP {status or 'any'} from http://{host}:{port}{path}",
        ignore=(OSError, http.client.HTTPException),
    )


@contextlib.contextmanager
def container_factory(
    client: docker.DockerClient, labels: Mapping[str, str] | None = None
) -> Iterator[ContainerFactory]:
    """A :class:`ContainerFactory` cleaned up on exit, for scripts and non-fixture code."""
    factory = ContainerFactory(client, labels)
    try:
        yield factory
    finally:
        factory.cleanup()
