"""ProxyConfig.from_settings: None without outputs, every problem listed otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from registrator.errors import ConfigError
from registrator.proxy_config import ProxyConfig
from registrator.proxy_config.config import parse_bind, parse_wait
from registrator.settings import load_settings
from tests.proxy.support import HAPROXY


def config(*argv: str) -> ProxyConfig | None:
    return ProxyConfig.from_settings(load_settings(list(argv), {}))


def test_nothing_configured() -> None:
    assert config() is None


@pytest.mark.skipif(HAPROXY is None, reason="no haproxy binary")
def test_full(tmp_path: Path) -> None:
    template = tmp_path / "t.j2"
    template.write_text("global\n{{ bind }}\n")
    cfg = config(
        "--haproxy-config",
        str(tmp_path / "haproxy.cfg"),
        "--haproxy-bind",
        "127.0.0.1:8080",
        "--haproxy-reload",
        "systemctl reload haproxy",
        "--haproxy-socket",
        "/run/haproxy/admin.sock",
        "--haproxy-template",
        str(template),
        "--traefik-config",
        str(tmp_path),
        "--proxy-wait",
        "0.5:5",
        "--proxy-min-reload-interval",
        "3",
        "--proxy-removal-guard",
        "0.3",
    )
    assert cfg is not None
    assert (cfg.bind_host, cfg.bind_port, cfg.haproxy_bind) == ("127.0.0.1", 8080, "127.0.0.1:8080")
    assert cfg.haproxy_template == "global\n{{ bind }}\n"
    assert cfg.traefik_config == tmp_path / "registrator.yml"
    assert (cfg.wait_min, cfg.wait_max, cfg.min_reload_interval, cfg.removal_guard) == (
        0.5,
        5,
        3,
        0.3,
    )
    assert cfg.haproxy_socket == Path("/run/haproxy/admin.sock")


def test_traefik_only_needs_no_haproxy(tmp_path: Path) -> None:
    cfg = config("--traefik-config", str(tmp_path / "dyn.yaml"))
    assert cfg is not None
    assert cfg.haproxy_config is None
    assert cfg.traefik_config == tmp_path / "dyn.yaml"


def test_every_problem_is_listed(tmp_path: Path) -> None:
    template = tmp_path / "bad.j2"
    template.write_text("{% for x in %}")
    with pytest.raises(ConfigError) as info:
        config(
            "--traefik-config",
            str(tmp_path / "dyn.json"),
            "--haproxy-socket",
            "/x.sock",
            "--haproxy-template",
            str(template),
            "--haproxy-bind",
            "nohost",
            "--proxy-wait",
            "2:1",
            "--proxy-removal-guard",
            "1.5",
        )
    text = "\n".join(info.value.problems)
    for fragment in (
        "-haproxy-socket needs -haproxy-config",
        "-haproxy-template needs",
        "-haproxy-bind",
        "-proxy-wait",
        "-proxy-removal-guard",
        ".yml or .yaml",
    ):
        assert fragment in text, text


def test_template_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.j2"
    bad.write_text("{% if %}")
    with pytest.raises(ConfigError, match="-haproxy-template: line 1"):
        config("--haproxy-config", str(tmp_path / "h.cfg"), "--haproxy-template", str(bad))
    with pytest.raises(ConfigError, match="cannot read"):
        config(
            "--haproxy-config",
            str(tmp_path / "h.cfg"),
            "--haproxy-template",
            str(tmp_path / "none"),
        )


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("*:80", ("*", 80)),
        (":8080", ("*", 8080)),
        ("127.0.0.1:81", ("127.0.0.1", 81)),
        ("[::]:80", ("::", 80)),
    ],
)
def test_parse_bind(text: str, want: tuple[str, int]) -> None:
    assert parse_bind(text) == want


@pytest.mark.parametrize("text", ["80", "host:80", "1.2.3.4:0", "[::1]", "1.2.3.4:70000"])
def test_parse_bind_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"ADDR:PORT|out of range|not \* or an IP"):
        parse_bind(text)


@pytest.mark.parametrize(
    ("text", "want"), [("0.2:2", (0.2, 2.0)), ("1", (1.0, 4.0)), ("0:0", (0.0, 0.0))]
)
def test_parse_wait(text: str, want: tuple[float, float]) -> None:
    assert parse_wait(text) == want
