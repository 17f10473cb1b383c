"""Backoff, the latest-value broadcast, the ops address parser and Consul's env resolution."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from registrator.backends.consul import ConsulConfig, aggregate_status, read_token, watched
from registrator.backoff import Backoff
from registrator.broadcast import Latest
from registrator.errors import ConfigError
from registrator.ops import parse_hostport
from registrator.settings import RegistryURI


def test_backoff_doubles_to_the_cap_with_jitter() -> None:
    b = Backoff(first=1, cap=8, jitter=0.0)
    assert [b.next() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    b.reset()
    assert b.next() == 1
    jittery = Backoff(first=10, cap=10, jitter=0.2)
    assert all(8 <= jittery.next() <= 12 for _ in range(100))


async def test_latest_gives_the_newest_value_not_a_backlog() -> None:
    latest: Latest[int] = Latest(0)
    for n in range(1, 6):
        await latest.publish(n)
    assert await latest.wait_newer(0) == (5, 5)
    waiter = asyncio.create_task(latest.wait_newer(5))
    await asyncio.sleep(0)
    assert not waiter.done()
    await latest.publish(6)
    assert await asyncio.wait_for(waiter, 1) == (6, 6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9180", ("127.0.0.1", 9180)), ("[::1]:80", ("::1", 80)), (":8", ("127.0.0.1", 8))],
)
def test_parse_hostport(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text) == expected


@pytest.mark.parametrize("text", ["nope", "1.2.3.4:99999", "host:"])
def test_parse_hostport_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_hostport(text)


@pytest.mark.parametrize(
    ("uri", "env", "where"),
    [
        (RegistryURI("consul", "10.0.0.1", 8500), {}, ("10.0.0.1", 8500, "http")),
        (RegistryURI("consul"), {}, ("127.0.0.1", 8500, "http")),
        (
            RegistryURI("consul"),
            {"CONSUL_HTTP_ADDR": "10.1.1.1:18500"},
            ("10.1.1.1", 18500, "http"),
        ),
        (
            RegistryURI("consul"),
            {"CONSUL_HTTP_ADDR": "http://c.example:85"},
            ("c.example", 85, "http"),
        ),
        (RegistryURI("consul-tls", "c", None), {}, ("c", 8501, "https")),
    ],
)
def test_consul_address(uri: RegistryURI, env: dict[str, str], where: tuple[str, int, str]) -> None:
    cfg = ConsulConfig.from_uri(uri, env)
    assert (cfg.host, cfg.port, cfg.scheme) == where


def test_consul_tls_files_from_env() -> None:
    env = {
        "CONSUL_CACERT": "/ca.pem",
        "CONSUL_CLIENT_CERT": "/c.pem",
        "CONSUL_CLIENT_KEY": "/k.pem",
    }
    cfg = ConsulConfig.from_uri(RegistryURI("consul-tls", "c", 8501), env)
    assert cfg.ca_file == "/ca.pem"
    assert cfg.client_cert == ("/c.pem", "/k.pem")
    with pytest.raises(ConfigError, match="set together"):
        ConsulConfig.from_uri(RegistryURI("consul-tls", "c", 8501), {"CONSUL_CLIENT_CERT": "/c"})


def test_token_precedence(tmp_path: Path) -> None:
    flag_file, env_file = tmp_path / "a", tmp_path / "b"
    flag_file.write_text("from-flag\n")
    env_file.write_text("from-env-file")
    env = {"CONSUL_HTTP_TOKEN_FILE": str(env_file), "CONSUL_HTTP_TOKEN": "from-env"}
    assert read_token(env, str(flag_file)) == "from-flag"
    assert read_token(env, None) == "from-env-file"
    assert read_token({"CONSUL_HTTP_TOKEN": "from-env"}, None) == "from-env"
    assert read_token({}, None) is None
    with pytest.raises(ConfigError, match="cannot read"):
        read_token({}, str(tmp_path / "missing"))
    (tmp_path / "empty").write_text(" \n")
    with pytest.raises(ConfigError, match="is empty"):
        read_token({}, str(tmp_path / "empty"))


@pytest.mark.parametrize(
    ("statuses", "result"),
    [
        ([], "passing"),
        (["passing"], "passing"),
        (["passing", "warning"], "warning"),
        (["warning", "critical"], "critical"),
        (["maintenance"], "critical"),
    ],
)
def test_aggregate_status(statuses: list[str], result: str) -> None:
    assert aggregate_status([{"Status": s} for s in statuses]) == result


@pytest.mark.parametrize(
    ("name", "globs", "result"),
    [
        ("web", (), True),  # no filter: every name
        ("web", ("web",), True),
        ("Web", ("web",), True),  # Consul names are case-insensitive
        ("web-api", ("web",), False),
        ("web-api", ("web*",), True),
        ("billing", ("web*", "bill?ng"), True),
        ("consul", ("web*",), False),
    ],
)
def test_watched_names(name: str, globs: tuple[str, ...], result: bool) -> None:
    assert watched(name, globs) is result
