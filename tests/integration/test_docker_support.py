"""The Docker test infrastructure itself: imported images, container lifecycle, port publishing."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.docker_support import (
    APPLETS,
    BUSYBOX_TAG,
    IMAGE_INPUTS_LABEL,
    SESSION_ID,
    SESSION_LABEL,
    TEST_LABEL,
    ContainerFactory,
    DockerUnavailableError,
    ImageFactory,
    build_busybox_image,
    connect,
    container_factory,
    host_port,
    image_changes,
    normalize_tag,
    rootfs_tarball,
    wait_http,
    wait_running,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
NAME_RE = re.compile(r"^regtest-[0-9a-f]{8}$")


def _gone(client: docker.DockerClient, container_id: str) -> bool:
    try:
        client.containers.get(container_id)
    except docker.errors.NotFound:
        return True
    return False


# --- pure helpers (no engine needed) -------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("registrator-test/busybox:latest", ("registrator-test/busybox", "latest")),
        ("localhost:5000/acme/web:1.2", ("localhost:5000/acme/web", "1.2")),
        ("localhost:5000/acme/web", ("localhost:5000/acme/web", "latest")),
        ("busybox", ("busybox", "latest")),
    ],
)
def test_normalize_tag(tag: str, expected: tuple[str, str]) -> None:
    assert normalize_tag(tag) == expected


def test_image_changes_defaults_and_overrides() -> None:
    defaults = image_changes()
    assert 'CMD ["/bin/sleep","3600"]' in defaults
    assert any(c.startswith("ENV PATH=") for c in defaults)

    custom = image_changes(['CMD ["/bin/httpd","-f"]', "EXPOSE 8080/tcp", "ENV PATH=/bin"])
    assert custom == ['CMD ["/bin/httpd","-f"]', "EXPOSE 8080/tcp", "ENV PATH=/bin"]


def test_rootfs_tarball_is_deterministic_and_complete() -> None:
    first = rootfs_tarball()
    assert first == rootfs_tarball()
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/busybox"].isfile()
    assert members["bin/busybox"].mode & 0o111
    for applet in APPLETS:
        assert members[f"bin/{applet}"].issym()
        assert members[f"bin/{applet}"].linkname == "busybox"
    assert members["tmp"].mode == 0o1777


def test_connect_reports_an_unreachable_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-such.sock'}")
    with pytest.raises(DockerUnavailableError, match=r"no-such\.sock"):
        connect(probe_timeout=2)


def _run_inner_pytest(tmp_path: Path, source: str, env: dict[str, str], *args: str) -> str:
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(textwrap.dedent(source))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(REPO_ROOT / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "-q",
            str(test_file),
            *args,
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return f"exit={result.returncode}\n{result.stdout}\n{result.stderr}"


INNER_TESTS = """
    import pytest

    @pytest.mark.docker
    def test_marked():
        pass

    def test_uses_fixture(containers):
        pass

    def test_plain():
        pass
"""


@pytest.mark.parametrize(
    ("require", "expected"),
    [
        ("0", ["exit=0", "1 passed, 2 skipped"]),
        ("1", ["exit=1", "1 passed, 2 errors", "REGISTRATOR_REQUIRE_DOCKER=1 is set"]),
    ],
)
def test_missing_engine_skips_or_fails(tmp_path: Path, require: str, expected: list[str]) -> None:
    output = _run_inner_pytest(
        tmp_path,
        INNER_TESTS,
        {
            "DOCKER_HOST": f"unix://{tmp_path / 'no-such.sock'}",
            "REGISTRATOR_REQUIRE_DOCKER": require,
        },
    )
    for fragment in expected:
        assert fragment in output, output


def test_fixture_users_are_marked_docker(tmp_path: Path) -> None:
    output = _run_inner_pytest(
        tmp_path,
        INNER_TESTS,
        {"DOCKER_HOST": f"unix://{tmp_path / 'no-such.sock'}"},
        "-m",
        "not docker",
    )
    assert "exit=0" in output, output
    assert "1 passed, 2 deselected" in output, output


# --- images ----------------------------------------------------------------------------------


@pytest.mark.docker
def test_busybox_image_is_imported(docker_client: docker.DockerClient, busybox_image: str) -> None:
    assert busybox_image == BUSYBOX_TAG
    image = docker_client.images.get(busybox_image)
    config = image.attrs["Config"]
    assert config["Cmd"] == ["/bin/sleep", "3600"]
    assert not config.get("ExposedPorts")
    assert image.labels[IMAGE_INPUTS_LABEL]
    # `docker import` leaves a single layer whose history says where it came from.
    history = docker_client.api.history(image.id)
    assert len(history) == 1
    assert history[0]["Comment"].startswith("Imported from")
    # Same inputs: the existing image is reused, not imported again.
    assert build_busybox_image(docker_client, busybox_image) == busybox_image
    assert docker_client.images.get(busybox_image).id == image.id


@pytest.mark.docker
def test_image_factory_variant(
    docker_client: docker.DockerClient, image_factory: ImageFactory
) -> None:
    tag = image_factory("localhost:5000/regtest/web:1.2", ["EXPOSE 8080/tcp", "ENV APP=web"])
    assert tag == "localhost:5000/regtest/web:1.2"
    config = docker_client.images.get(tag).attrs["Config"]
    assert set(config["ExposedPorts"]) == {"8080/tcp"}
    assert "APP=web" in config["Env"]
    assert (
        image_factory("localhost:5000/regtest/web:1.2", ["EXPOSE 8080/tcp", "ENV APP=web"]) == tag
    )


# --- containers ------------------------------------------------------------------------------


@pytest.mark.docker
def test_container_runs_and_is_removed(
    docker_client: docker.DockerClient, busybox_image: str
) -> None:
    factory = ContainerFactory(docker_client)
    network = factory.network(driver="bridge")
    container = factory.run(busybox_image, network=network.name, labels={"app": "x"})
    wait_running(container)
    assert NAME_RE.match(container.name)
    labels = container.labels
    assert labels[TEST_LABEL] == "1"
    assert labels[SESSION_LABEL] == SESSION_ID
    assert labels["app"] == "x"
    exit_code, output = container.exec_run(["echo", "hello"])
    assert (exit_code, output) == (0, b"hello\n")

    factory.cleanup()

    assert _gone(docker_client, container.id)
    with pytest.raises(docker.errors.NotFound):
        docker_client.networks.get(network.id)
    factory.cleanup()  # idempotent


@pytest.mark.docker
def test_containers_fixture_cleanup(
    docker_client: docker.DockerClient, containers: ContainerFactory, busybox_image: str
) -> None:
    first = containers.run(busybox_image)
    second = containers.create(busybox_image, ["sleep", "5"], name="regtest-fixed-name-check")
    assert second.name == "regtest-fixed-name-check"
    assert containers.container_ids == [first.id, second.id]
    containers.cleanup()  # what the fixture's teardown does
    assert _gone(docker_client, first.id)
    assert _gone(docker_client, second.id)
    assert containers.container_ids == []


@pytest.mark.docker
def test_cleanup_runs_when_the_test_body_fails(
    docker_client: docker.DockerClient, busybox_image: str
) -> None:
    started: list[str] = []

    def failing_test_body() -> None:
        with container_factory(docker_client) as factory:
            started.append(factory.run(busybox_image).id)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        failing_test_body()
    assert started
    assert _gone(docker_client, started[0])


@pytest.mark.docker
def test_failed_start_is_still_cleaned_up(
    docker_client: docker.DockerClient, busybox_image: str
) -> None:
    factory = ContainerFactory(docker_client)
    with pytest.raises(docker.errors.APIError):
        # Created fine, but the start fails: there is no such executable in the image.
        factory.run(busybox_image, ["/bin/does-not-exist"])
    assert len(factory.container_ids) == 1
    leftover = factory.container_ids[0]
    factory.cleanup()
    assert _gone(docker_client, leftover)


# --- published ports -------------------------------------------------------------------------


@pytest.mark.docker
def test_published_port_answers_http(containers: ContainerFactory, busybox_image: str) -> None:
    container = containers.run(
        busybox_image,
        ["httpd", "-f", "-p", "8080", "-h", "/var/www"],
        ports={"8080/tcp": ("127.0.0.1", None)},
    )
    wait_running(container)
    bindings = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
    port = host_port(container, "8080/tcp")

    response = wait_http("127.0.0.1", port, "/index.html", timeout=30)

    assert response.status == 200
    assert response.body == b"registrator-test\n"


@pytest.mark.docker
async def test_fixtures_work_in_async_tests(
    containers: ContainerFactory, busybox_image: str
) -> None:
    container = containers.run(
        busybox_image,
        ["httpd", "-f", "-p", "8080", "-h", "/var/www"],
        ports={"8080/tcp": ("127.0.0.1", None)},
    )
    port = await asyncio.to_thread(lambda: host_port(wait_running(container), "8080/tcp"))

    async def fetch() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /index.html HTTP/1.0\r\nHost: test\r\n\r\n")
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        try:
            reply = await fetch()
        except OSError:
            reply = b""
        if reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]:
            break
        assert loop.time() < deadline, f"no HTTP answer on 127.0.0.1:{port}: {reply!r}"
        await asyncio.sleep(0.1)
    assert reply.endswith(b"registrator-test\n")
