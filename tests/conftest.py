"""Shared fixtures: a real Docker engine, busybox images made by ``docker import``, containers.

Tests that need Docker carry ``@pytest.mark.docker`` (tests using the Docker fixtures get the
marker automatically). Without an engine they are skipped, unless
``REGISTRATOR_REQUIRE_DOCKER=1``, which turns the skip into a failure (CI sets it).
"""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from tests.docker_support import (
    BUSYBOX_TAG,
    REQUIRE_DOCKER_ENV,
    ContainerFactory,
    DockerUnavailableError,
    ImageFactory,
    connect,
    docker_required,
    make_image_factory,
    sweep,
)

DOCKER_FIXTURES = frozenset({"docker_client", "image_factory", "busybox_image", "containers"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests that use the Docker fixtures, so ``-m "not docker"`` deselects them too."""
    for item in items:
        fixturenames = getattr(item, "fixturenames", ())
        if item.get_closest_marker("docker") is None and DOCKER_FIXTURES & set(fixturenames):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(autouse=True)
def _docker_marker_gate(request: pytest.FixtureRequest) -> None:
    """Skip (or fail, with REGISTRATOR_REQUIRE_DOCKER=1) ``docker``-marked tests without an engine.

    The decision is the ``docker_client`` fixture's, so marked tests that do not use it behave
    exactly like those that do.
    """
    if request.node.get_closest_marker("docker") is not None:
        request.getfixturevalue("docker_client")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A Docker SDK client from the environment; the session's leftovers are swept at the end."""
    try:
        client = connect()
    except DockerUnavailableError as exc:
        if docker_required():
            pytest.fail(
                f"{exc}\n{REQUIRE_DOCKER_ENV}=1 is set, so a missing Docker engine is a failure: "
                "start dockerd (CI's .ci/run does) or unset the variable to skip these tests.",
                pytrace=False,
            )
        pytest.skip(f"Docker engine not available ({exc}); set {REQUIRE_DOCKER_ENV}=1 to fail")
    try:
        sweep(client)  # leftovers of earlier sessions that died without cleaning up
        yield client
    finally:
        try:
            sweep(client)
        finally:
            client.close()


@pytest.fixture(scope="session")
def image_factory(docker_client: docker.DockerClient) -> ImageFactory:
    """``(tag, changes=()) -> tag``: a busybox image made by ``docker import`` (kept, reused)."""
    return make_image_factory(docker_client)


@pytest.fixture(scope="session")
def busybox_image(image_factory: ImageFactory) -> str:
    """``registrator-test/busybox:latest``: busybox applets, ``CMD ["/bin/sleep","3600"]``."""
    return image_factory(BUSYBOX_TAG)


@pytest.fixture
def containers(docker_client: docker.DockerClient) -> Iterator[ContainerFactory]:
    """Per-test container/network factory; everything it made is force-removed at teardown."""
    factory = ContainerFactory(docker_client)
    try:
        yield factory
    finally:
        factory.cleanup()
