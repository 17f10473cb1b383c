"""ProxyConfig: the proxy writer's settings, checked once at start-up."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import jinja2

from registrator.errors import ConfigError, RegistratorError
from registrator.settings import Settings

TRAEFIK_DEFAULT_NAME = "registrator.yml"  # the file written when -traefik-config is a directory
_TRAEFIK_SUFFIXES = (".yml", ".yaml")
_HAPROXY_CANDIDATES = ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")


class ProxyConfigError(RegistratorError):
    """A rendered proxy configuration was refused (validation, write or reload failed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyConfig:
    """Where to write which proxy configuration, and how to apply it."""

    haproxy_config: Path | None = None
    bind_host: str = "*"  # "*" (all IPv4), an IPv4 literal or an IPv6 literal without brackets
    bind_port: int = 80
    haproxy_reload: str | None = None  # run with /bin/sh -c after a validated change
    haproxy_socket: Path | None = None  # Runtime API (stats socket, level admin)
    haproxy_template: str | None = None  # Jinja2 source replacing the built-in template
    haproxy_bin: str = "haproxy"
    traefik_config: Path | None = None  # always a .yml/.yaml file path (directory resolved)
    wait_min: float = 0.2
    wait_max: float = 2.0
    min_reload_interval: float = 1.0
    removal_guard: float = 0.5  # 1.0: off
    removal_confirm_after: float = 2.0  # a refused removal is applied if still there this late
    backups: int = 3
    drain_timeout: float = 10.0  # how long a removed server may finish in-flight requests
    command_timeout: float = 30.0  # haproxy -c and the reload command

    @property
    def haproxy_bind(self) -> str:
        host = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        return f"{host}:{self.bind_port}"

    @classmethod
    def from_settings(cls, settings: Settings) -> ProxyConfig | None:
        """The proxy part of `settings`; None when neither output is configured. ConfigError
        lists every value that cannot be used."""
        problems: list[str] = []
        haproxy = settings.haproxy_config
        if haproxy is None:
            for flag, value in (
                ("-haproxy-reload", settings.haproxy_reload),
                ("-haproxy-socket", settings.haproxy_socket),
                ("-haproxy-template", settings.haproxy_template),
            ):
                if value is not None:
                    problems.append(f"{flag} needs -haproxy-config")
        if haproxy is None and settings.traefik_config is None:
            if problems:
                raise ConfigError(problems)
            return None

        bind_host, bind_port = "*", 80
        try:
            bind_host, bind_port = parse_bind(settings.haproxy_bind)
        except ValueError as exc:
            problems.append(f"-haproxy-bind: {exc}")
        wait_min, wait_max = 0.2, 2.0
        try:
            wait_min, wait_max = parse_wait(settings.proxy_wait)
        except ValueError as exc:
            problems.append(f"-proxy-wait: {exc}")
        guard = settings.proxy_removal_guard
        if not 0 < guard <= 1:
            problems.append(f"-proxy-removal-guard: {guard} is not in (0, 1] (1 turns it off)")

        template = None
        binary = "haproxy"
        if haproxy is not None:
            if Path(haproxy).is_dir() or haproxy.endswith("/"):
                problems.append(f"-haproxy-config: {haproxy!r} is a directory; name the file")
            found = find_haproxy()
            if found is None:
                problems.append(
                    "-haproxy-config: no haproxy binary on PATH or in /usr/sbin to validate "
                    "the configuration with (install HAProxy)"
                )
            else:
                binary = found
            if settings.haproxy_template is not None:
                try:
                    template = Path(settings.haproxy_template).read_text(encoding="utf-8")
                    jinja2.Environment(autoescape=False).parse(template)  # noqa: S701
                except (OSError, UnicodeDecodeError) as exc:
                    problems.append(f"-haproxy-template: cannot read it ({exc})")
                except jinja2.TemplateSyntaxError as exc:
                    problems.append(f"-haproxy-template: line {exc.lineno}: {exc.message}")
        traefik = None
        if settings.traefik_config is not None:
            try:
                traefik = traefik_path(settings.traefik_config)
            except ValueError as exc:
                problems.append(f"-traefik-config: {exc}")
        if problems:
            raise ConfigError(problems)
        return cls(
            haproxy_config=Path(haproxy) if haproxy is not None else None,
            bind_host=bind_host,
            bind_port=bind_port,
            haproxy_reload=settings.haproxy_reload,
            haproxy_socket=Path(settings.haproxy_socket) if settings.haproxy_socket else None,
            haproxy_template=template,
            haproxy_bin=binary,
            traefik_config=traefik,
            wait_min=wait_min,
            wait_max=wait_max,
            min_reload_interval=settings.proxy_min_reload_interval,
            removal_guard=guard,
            removal_confirm_after=max(wait_max, 1.0),
        )


def parse_bind(text: str) -> tuple[str, int]:
    """`*:80`, `:80`, `127.0.0.1:8080`, `[::]:80` -> (host, port)."""
    m = re.fullmatch(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]\s]*)):(\d{1,5})", text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not ADDR:PORT (e.g. *:80, 127.0.0.1:8080, [::]:80)")
    host = m.group(1) or m.group(2) or "*"
    port = int(m.group(3))
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    if host != "*":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not * or an IP address") from None
    return host, port


def parse_wait(text: str) -> tuple[float, float]:
    """consul-template's `MIN:MAX` seconds; `MIN` alone means MAX = 4 x MIN."""
    low, sep, high = text.strip().partition(":")
    try:
        wait_min = float(low)
        wait_max = float(high) if sep else 4 * wait_min
    except ValueError:
        raise ValueError(f"{text!r} is not MIN:MAX seconds (e.g. 0.2:2)") from None
    if wait_min < 0 or wait_max < wait_min:
        raise ValueError(f"{text!r}: need 0 <= MIN <= MAX")
    return wait_min, wait_max


def traefik_path(text: str) -> Path:
    """The file to write: a directory gets `registrator.yml` (Traefik's directory mode); a file
    must end in .yml or .yaml, the only YAML names Traefik's file provider loads."""
    path = Path(text)
    if text.endswith("/") or path.is_dir():
        return path / TRAEFIK_DEFAULT_NAME
    if path.suffix.lower() not in _TRAEFIK_SUFFIXES:
        raise ValueError(f"{text!r} must end in .yml or .yaml (or name a directory)")
    return path


def find_haproxy() -> str | None:
    found = shutil.which("haproxy")
    if found:
        return found
    for candidate in _HAPROXY_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None
