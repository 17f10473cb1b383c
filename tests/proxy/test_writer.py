"""The writer loop with real `haproxy -c` validation and a shell reload command that records its
runs (no HAProxy process, no Docker)."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import yaml
from structlog.testing import capture_logs

from registrator.proxy_config import ProxyConfig
from tests.proxy.conftest import StartWriter, until
from tests.proxy.support import instance, snapshot, vhost_tags
from tests.proxy.test_render import SCHEMA


def web(n: int, version: int, *, service: str = "web", base: int = 31000):  # type: ignore[no-untyped-def]
    tags = vhost_tags(service, f"{service}.example")
    return [instance(f"n1:{service}{i}:80", service, base + i, tags) for i in range(n)]


def counting_reload(tmp_path: Path, gate: Path | None = None) -> tuple[str, Path]:
    """A reload command appending a timestamp per run; it fails while `gate` is missing."""
    log = tmp_path / "reloads.log"
    command = f"date +%s.%N >> {log}"
    if gate is not None:
        command = f"test -f {gate} && {command}"
    return command, log


def runs(log: Path) -> list[float]:
    return [float(x) for x in log.read_text().split()] if log.exists() else []


def events(logs: list[dict], name: str) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in logs if e["event"] == name]


async def test_first_render_is_not_delayed(
    haproxy_config: ProxyConfig, start_writer: StartWriter
) -> None:
    """Even with a 30 s quiescence the first published catalog is written at once."""
    cfg = replace(haproxy_config, wait_min=30, wait_max=60)
    run = await start_writer(cfg, snapshot(web(2, 1)))
    await run.applied(timeout=10)
    assert "server n1:web1:80 127.0.0.1:31001" in cfg.haproxy_config.read_text()  # type: ignore[union-attr]


async def test_nothing_is_rendered_before_the_first_snapshot(
    haproxy_config: ProxyConfig, start_writer: StartWriter
) -> None:
    """The empty placeholder of an unstarted registry never overwrites a file."""
    path = haproxy_config.haproxy_config
    assert path is not None
    path.write_text("# the operator's file\n")
    run = await start_writer(haproxy_config)  # nothing published
    await until(
        lambda: run.writer.stats.renders == 0 and not run.task.done(), timeout=1, what="idle"
    )
    assert path.read_text() == "# the operator's file\n"
    await run.publish(snapshot(web(1, 1)))
    await run.applied()
    assert "be_web" in path.read_text()


async def test_unchanged_state_never_rewrites_or_reloads(
    tmp_path: Path, haproxy_config: ProxyConfig, start_writer: StartWriter
) -> None:
    command, log = counting_reload(tmp_path)
    cfg = replace(haproxy_config, haproxy_reload=command)
    instances = web(3, 1)
    run = await start_writer(cfg, snapshot(instances))
    await run.applied()
    path = cfg.haproxy_config
    assert path is not None
    before = (path.stat().st_ino, path.stat().st_mtime_ns, len(runs(log)))
    assert before[2] == 1
    for version in range(2, 6):  # same catalog, new versions, other orders
        await run.publish(snapshot(instances[::-1] if version % 2 else instances, version))
        await run.applied(version)
    assert (path.stat().st_ino, path.stat().st_mtime_ns, len(runs(log))) == before
    assert run.writer.stats.writes == 1
    assert run.writer.stats.unchanged >= 4


INVALID_WHEN_TWO = (
    "global\ndefaults\n  mode http\n"
    "  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\n"
    "frontend f\n  bind {{ bind }}\n"
    "{% if backends|length > 1 %}  this_is_not_a_keyword\n{% endif %}"
)


async def test_invalid_candidate_keeps_the_last_known_good_file(
    tmp_path: Path, haproxy_config: ProxyConfig, start_writer: StartWriter
) -> None:
    command, log = counting_reload(tmp_path)
    cfg = replace(haproxy_config, haproxy_reload=command, haproxy_template=INVALID_WHEN_TWO)
    path = cfg.haproxy_config
    assert path is not None
    with capture_logs() as logs:
        run = await start_writer(cfg, snapshot(web(1, 1)))
        await run.applied()
        good = path.read_text()
        await run.publish(snapshot(web(1, 2) + web(1, 2, service="api"), 2))
        await until(lambda: run.writer.stats.validation_failures == 1, timeout=10, what="refusal")
        assert path.read_text() == good
        assert len(runs(log)) == 1
        (invalid,) = events(logs, "proxy_config_invalid")
        assert invalid["target"] == "haproxy"
        assert "this_is_not_a_keyword" in invalid["stderr"]
        assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
        await run.publish(snapshot(web(1, 3), 3))  # back to a valid state
        await run.applied(3)
    assert path.read_text() == good
    assert run.writer.stats.failures == 1


async def test_failed_reload_restores_the_file_and_retries(
    tmp_path: Path, haproxy_config: ProxyConfig, start_writer: StartWriter
) -> None:
    gate = tmp_path / "haproxy-up"
    gate.touch()
    command, log = counting_reload(tmp_path, gate)
    cfg = replace(haproxy_config, haproxy_reload=command)
    path = cfg.haproxy_config
    assert path is not None
    with capture_logs() as logs:
        run = await start_writer(cfg, snapshot(web(1, 1)))
        await run.applied()
        first = path.read_text()
        gate.unlink()
        await run.publish(snapshot(web(2, 2), 2))
        await until(lambda: run.writer.stats.reload_failures >= 1, timeout=10, what="failed reload")
        await until(lambda: path.read_text() == first, timeout=5, what="restored file")
        assert events(logs, "proxy_reload_failed")[0]["restored"] is True
        gate.touch()
        await run.applied(2, timeout=40)  # retried with backoff
    assert "n1:web1:80" in path.read_text()
    assert len(runs(log)) == 2


async def test_reloads_are_spaced_by_the_minimum_interval(
    tmp_path: Path, haproxy_config: ProxyConfig, start_writer: StartWriter
) -> None:
    command, log = counting_reload(tmp_path)
    cfg = replace(
        haproxy_config,
        haproxy_reload=command,
        min_reload_interval=1.0,
        wait_min=0.01,
        wait_max=0.05,
    )
    run = await start_writer(cfg, snapshot(web(1, 1)))
    await run.applied()
    for version in (2, 3):
        await run.publish(snapshot(web(version, version), version))
        await run.applied(version)
    times = runs(log)
    assert len(times) == 3
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times)), times
    assert run.writer.stats.deferred >= 1


async def test_mass_removal_is_held_until_it_persists(
    tmp_path: Path, haproxy_config: ProxyConfig, start_writer: StartWriter
) -> None:
    command, _ = counting_reload(tmp_path)
    cfg = replace(haproxy_config, haproxy_reload=command, removal_confirm_after=1.0)
    path = cfg.haproxy_config
    assert path is not None
    with capture_logs() as logs:
        run = await start_writer(cfg, snapshot(web(2, 1) + web(1, 1, service="api", base=32000)))
        await run.applied()
        await run.publish(snapshot(web(2, 2), 2))  # every api server gone at once
        await until(lambda: events(logs, "proxy_removal_refused"), timeout=10, what="refusal")
        assert "n1:api0:80" in path.read_text()
        # no new catalog arrives: the writer re-reads, sees the same, and applies it
        await until(
            lambda: events(logs, "proxy_removal_confirmed"), timeout=10, what="confirmation"
        )
        await until(lambda: "n1:api0:80" not in path.read_text(), timeout=10, what="api removed")
    assert events(logs, "proxy_removal_refused")[0]["emptied"] == ["api"]
    assert run.writer.stats.removals_refused == 1


async def test_guard_off_applies_at_once(
    haproxy_config: ProxyConfig, start_writer: StartWriter
) -> None:
    cfg = replace(haproxy_config, removal_guard=1.0)
    run = await start_writer(cfg, snapshot(web(4, 1)))
    await run.applied()
    await run.publish(snapshot([], 2))
    await run.applied(2)
    assert "    server " not in cfg.haproxy_config.read_text()  # type: ignore[union-attr]


async def test_traefik_directory_mode_and_schema(tmp_path: Path, start_writer: StartWriter) -> None:
    """One file under a name Traefik's directory provider loads; the temp and backup files are
    names it ignores; the YAML parses to a schema-valid document."""
    directory = tmp_path / "dynamic"
    directory.mkdir()
    cfg = ProxyConfig(traefik_config=directory / "registrator.yml", wait_min=0.01, wait_max=0.05)
    run = await start_writer(cfg, snapshot(web(2, 1)))
    await run.applied()
    await run.publish(snapshot(web(3, 2), 2))
    await run.applied(2)
    loaded = sorted(p.name for p in directory.iterdir() if p.suffix in (".yml", ".yaml", ".toml"))
    assert loaded == ["registrator.yml"]
    doc = yaml.safe_load((directory / "registrator.yml").read_text())
    assert len(doc["http"]["services"]["web"]["loadBalancer"]["servers"]) == 3
    if SCHEMA.exists():
        jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    mtime = (directory / "registrator.yml").stat().st_mtime_ns
    await run.publish(snapshot(web(3, 3), 3))
    await run.applied(3)
    assert (directory / "registrator.yml").stat().st_mtime_ns == mtime


async def test_both_outputs_at_once(
    tmp_path: Path, haproxy_config: ProxyConfig, start_writer: StartWriter
) -> None:
    cfg = replace(haproxy_config, traefik_config=tmp_path / "traefik.yml")
    run = await start_writer(cfg, snapshot(web(2, 1)))
    await run.applied()
    assert "be_web" in cfg.haproxy_config.read_text()  # type: ignore[union-attr]
    assert "web:" in (tmp_path / "traefik.yml").read_text()
    assert run.writer.stats.writes == 2
    assert run.writer.stats.counters()["writes"] == 2.0


@pytest.mark.parametrize("bad", ["template_error"])
async def test_template_runtime_error_is_a_validation_failure(
    bad: str, haproxy_config: ProxyConfig, start_writer: StartWriter
) -> None:
    cfg = replace(haproxy_config, haproxy_template="{{ no_such_variable }}")
    run = await start_writer(cfg, snapshot(web(1, 1)))
    await until(
        lambda: run.writer.stats.validation_failures == 1, timeout=10, what="template failure"
    )
    assert not cfg.haproxy_config.exists()  # type: ignore[union-attr]
