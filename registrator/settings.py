"""Settings: declared once (the `Settings` fields), read from flags, then `REGISTRATOR_*` env vars,
then defaults. Pure: `load_settings(argv, environ)` takes both as values and raises one ConfigError
that lists every problem it found."""

from __future__ import annotations

import argparse
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from urllib.parse import urlsplit

from registrator import __version__
from registrator.errors import ConfigError

ENV_PREFIX = "REGISTRATOR_"
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})
_LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, slots=True)
class RegistryURI:
    """Where registrations go: the embedded registry (`local`) or a Consul agent."""

    scheme: Literal["local", "consul", "consul-tls", "consul-unix"]
    host: str = ""  # "" means CONSUL_HTTP_ADDR or 127.0.0.1:8500, resolved by the backend
    port: int | None = None
    path: str = ""  # the socket path for consul-unix

    @property
    def is_consul(self) -> bool:
        return self.scheme != "local"

    def __str__(self) -> str:
        if self.scheme == "consul-unix":
            return f"consul-unix://{self.path}"
        hostport = f"{self.host}:{self.port}" if self.port else self.host
        return f"{self.scheme}://{hostport}"


def _opt(
    help: str,
    *flags: str,
    kind: str = "str",
    metavar: str | None = None,
    choices: Sequence[str] = (),
) -> dict[str, Any]:
    return {"help": help, "flags": flags, "kind": kind, "metavar": metavar, "choices": choices}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Every option. Each field's metadata declares its flags and help; nothing else lists them."""

    uri: RegistryURI = field(
        default=RegistryURI("local"),
        metadata=_opt(
            "registry: none or local:// (embedded, one host), consul://HOST:PORT, "
            "consul-tls://HOST:PORT, consul-unix:///PATH",
            kind="uri",
        ),
    )
    ip: str | None = field(
        default=None, metadata=_opt("address to register for every service", "ip", metavar="IP")
    )
    internal: bool = field(
        default=False,
        metadata=_opt(
            "register the container's own IP and exposed port instead of the published ones",
            "internal",
            kind="bool",
        ),
    )
    explicit: bool = field(
        default=False,
        metadata=_opt("register only services named by SERVICE_NAME", "explicit", kind="bool"),
    )
    use_ip_from_label: str | None = field(
        default=None,
        metadata=_opt(
            "take the service address from this container label",
            "useIpFromLabel",
            "use-ip-from-label",
            metavar="LABEL",
        ),
    )
    tags: tuple[str, ...] = field(
        default=(),
        metadata=_opt("comma list of tags added to every service", "tags", kind="csv"),
    )
    resync: int = field(
        default=0,
        metadata=_opt(
            "reconcile every N seconds even without events (0: off)", "resync", kind="seconds"
        ),
    )
    cleanup: bool = field(
        default=False,
        metadata=_opt(
            "deregister this node's services whose container no longer runs", "cleanup", kind="bool"
        ),
    )
    deregister: Literal["always", "on-success"] = field(
        default="always",
        metadata=_opt(
            "when a container exits: always deregister, or on-success (keep it when it exited "
            "non-zero, so its checks turn critical)",
            "deregister",
            kind="choice",
            choices=("always", "on-success"),
        ),
    )
    retry_attempts: int = field(
        default=0,
        metadata=_opt(
            "retries when the registry does not answer at start-up (-1: forever)",
            "retry-attempts",
            kind="int",
        ),
    )
    retry_interval: int = field(
        default=2000,
        metadata=_opt("milliseconds between those retries", "retry-interval", kind="millis"),
    )
    ttl: int = field(
        default=0,
        metadata=_opt("TTL check in seconds on every service (0: off)", "ttl", kind="seconds"),
    )
    ttl_refresh: int = field(
        default=0,
        metadata=_opt("seconds between TTL check passes", "ttl-refresh", kind="seconds"),
    )
    node: str | None = field(
        default=None,
        metadata=_opt(
            "node name in service IDs (default: the Docker engine's host name)",
            "node",
            metavar="NAME",
        ),
    )
    port_env: tuple[str, ...] = field(
        default=("PORT",),
        metadata=_opt(
            "host-network containers: glob of env vars holding ports; a * names the port "
            "(SERVER_*_PORT: SERVER_HTTP_PORT is the port 'http'); repeatable",
            "port-env",
            kind="list",
            metavar="GLOB",
        ),
    )
    network: str | None = field(
        default=None,
        metadata=_opt(
            "with -internal: the network whose IP is registered", "network", metavar="NAME"
        ),
    )
    dry_run: bool = field(
        default=False,
        metadata=_opt(
            "print the registrations for the running containers as JSON and exit",
            "dry-run",
            kind="bool",
        ),
    )
    token_file: str | None = field(
        default=None,
        metadata=_opt(
            "file holding the Consul ACL token (else CONSUL_HTTP_TOKEN_FILE, else "
            "CONSUL_HTTP_TOKEN)",
            "token-file",
            metavar="PATH",
        ),
    )
    ignore_health: bool = field(
        default=False,
        metadata=_opt(
            "register containers whatever their Docker HEALTHCHECK says (default: only once "
            "healthy, and deregistered while unhealthy)",
            "ignore-health",
            kind="bool",
        ),
    )
    deregister_on_shutdown: bool = field(
        default=False,
        metadata=_opt(
            "on SIGTERM/SIGINT, deregister the services of running containers too",
            "deregister-on-shutdown",
            kind="bool",
        ),
    )
    http_addr: str = field(
        default="127.0.0.1:9180",
        metadata=_opt(
            "ops HTTP listen address: /health, /v1/catalog (off: none)",
            "http-addr",
            metavar="HOST:PORT|off",
        ),
    )
    no_register: bool = field(
        default=False,
        metadata=_opt(
            "do not watch Docker: serve DNS (and proxy config) from the registry only",
            "no-register",
            kind="bool",
        ),
    )
    watch_services: tuple[str, ...] = field(
        default=(),
        metadata=_opt(
            "Consul: hold only these service names in the snapshot for DNS and the proxy "
            "(comma list of globs with * and ?, any case; repeatable; default: all)",
            "watch-services",
            kind="list",
            metavar="GLOB",
        ),
    )
    dns_addr: str = field(
        default="127.0.0.1:8600",
        metadata=_opt(
            "DNS listen address, UDP and TCP (off: no DNS)", "dns-addr", metavar="HOST:PORT|off"
        ),
    )
    dns_domain: str = field(
        default="consul",
        metadata=_opt("DNS domain answered", "dns-domain", metavar="DOMAIN"),
    )
    dns_alt_domain: str | None = field(
        default=None,
        metadata=_opt(
            "a second DNS domain answered the same way", "dns-alt-domain", metavar="DOMAIN"
        ),
    )
    dns_ttl: int = field(
        default=2,
        metadata=_opt("TTL of service answers, seconds", "dns-ttl", kind="seconds"),
    )
    dns_service_ttl: tuple[str, ...] = field(
        default=(),
        metadata=_opt(
            "per-service TTL, NAME=SECONDS (NAME may end in *), repeatable",
            "dns-service-ttl",
            kind="list",
            metavar="NAME=SECONDS",
        ),
    )
    dns_node_ttl: int = field(
        default=2,
        metadata=_opt("TTL of node answers, seconds", "dns-node-ttl", kind="seconds"),
    )
    dns_negative_ttl: int = field(
        default=1,
        metadata=_opt(
            "SOA minimum: how long resolvers cache a negative answer, seconds",
            "dns-negative-ttl",
            kind="seconds",
        ),
    )
    dns_only_passing: bool = field(
        default=False,
        metadata=_opt(
            "answer only with instances whose checks all pass (drop warning too)",
            "dns-only-passing",
            kind="bool",
        ),
    )
    dns_recursors: tuple[str, ...] = field(
        default=(),
        metadata=_opt(
            "forward names outside our domains to these servers (HOST[:PORT]); without one "
            "they are REFUSED. Repeatable",
            "dns-recursors",
            kind="list",
            metavar="HOST[:PORT]",
        ),
    )
    haproxy_config: str | None = field(
        default=None,
        metadata=_opt("write HAProxy configuration to this file", "haproxy-config", metavar="PATH"),
    )
    haproxy_bind: str = field(
        default="*:80",
        metadata=_opt(
            "the HAProxy HTTP frontend's bind address", "haproxy-bind", metavar="ADDR:PORT"
        ),
    )
    haproxy_reload: str | None = field(
        default=None,
        metadata=_opt(
            "command run after a validated HAProxy configuration change",
            "haproxy-reload",
            metavar="CMD",
        ),
    )
    haproxy_socket: str | None = field(
        default=None,
        metadata=_opt(
            "HAProxy Runtime API socket: server-only changes without a reload",
            "haproxy-socket",
            metavar="PATH",
        ),
    )
    haproxy_template: str | None = field(
        default=None,
        metadata=_opt(
            "Jinja2 template replacing the built-in HAProxy one", "haproxy-template", metavar="PATH"
        ),
    )
    traefik_config: str | None = field(
        default=None,
        metadata=_opt(
            "write Traefik file-provider dynamic configuration (YAML) to this file",
            "traefik-config",
            metavar="PATH",
        ),
    )
    proxy_wait: str = field(
        default="0.2:2",
        metadata=_opt(
            "debounce MIN:MAX seconds between a registry change and a render (the first "
            "render is never delayed)",
            "proxy-wait",
            metavar="MIN:MAX",
        ),
    )
    proxy_min_reload_interval: float = field(
        default=1.0,
        metadata=_opt(
            "minimum seconds between two proxy reloads", "proxy-min-reload-interval", kind="float"
        ),
    )
    proxy_removal_guard: float = field(
        default=0.5,
        metadata=_opt(
            "refuse, until it persists across reads, a change removing all servers of a "
            "service or more than this fraction of all servers (1: off)",
            "proxy-removal-guard",
            kind="float",
        ),
    )
    log_format: Literal["auto", "json", "console"] = field(
        default="auto",
        metadata=_opt(
            "log format (auto: console on a terminal, else JSON)",
            "log-format",
            kind="choice",
            choices=("auto", "json", "console"),
        ),
    )
    log_level: str = field(
        default="info",
        metadata=_opt("log level", "log-level", kind="choice", choices=_LOG_LEVELS),
    )


# ---------------------------------------------------------------------------------------------
# Parsing


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print and exit
        raise ConfigError([message])


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="registrator",
        usage="registrator [options] [URI]",
        description=(
            "Register running Docker containers' services in a registry. Every option can also "
            f"be set with an environment variable {ENV_PREFIX}<NAME> (e.g. {ENV_PREFIX}IP, "
            f"{ENV_PREFIX}PORT_ENV=A,B); a flag beats its env var, which beats the default. "
            "Flags take one dash or two (-ip or --ip)."
        ),
        add_help=False,
        allow_abbrev=False,
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    parser.add_argument("-version", "--version", action="store_true", help="print the version")
    for f in fields(Settings):
        meta = f.metadata
        env = ENV_PREFIX + f.name.upper()
        text = f"{meta['help']} [{env}{_default_text(f.default)}]"
        if meta["kind"] == "uri":
            parser.add_argument("uri", nargs="?", help=text, metavar="URI")
            continue
        flags = [d + name for name in meta["flags"] for d in ("-", "--")]
        if meta["kind"] == "bool":
            parser.add_argument(*flags, dest=f.name, action="store_const", const="true", help=text)
        elif meta["kind"] == "list":
            parser.add_argument(
                *flags, dest=f.name, action="append", help=text, metavar=meta["metavar"]
            )
        else:
            metavar = meta["metavar"] or ("|".join(meta["choices"]) or _METAVARS[meta["kind"]])
            parser.add_argument(*flags, dest=f.name, help=text, metavar=metavar)
    return parser


_METAVARS = {
    "csv": "A,B",
    "int": "N",
    "float": "X",
    "seconds": "SECONDS",
    "millis": "MS",
    "str": "VALUE",
}


def _default_text(default: Any) -> str:
    if default in (None, False, (), 0) and default is not True:
        return ""
    if isinstance(default, tuple):
        return f"; default {','.join(default)}"
    return f"; default {default}"


def help_text() -> str:
    return build_parser().format_help()


def wants_help(argv: Sequence[str]) -> bool:
    return any(a in ("-h", "--help", "-help") for a in argv)


def wants_version(argv: Sequence[str]) -> bool:
    return any(a in ("-version", "--version") for a in argv)


def version_text() -> str:
    return f"registrator {__version__}"


def load_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Settings from flags, then env vars, then defaults; ConfigError listing every problem."""
    argv, inline_bools = _split_inline_bools(argv)
    parser = build_parser()
    namespace, unknown = parser.parse_known_args(argv)
    problems = [f"unknown argument {arg!r}" for arg in unknown]
    values: dict[str, Any] = {}
    for f in fields(Settings):
        env = ENV_PREFIX + f.name.upper()
        raw = inline_bools.get(f.name, getattr(namespace, f.name, None))
        origin = "flag"
        if raw is None and env in environ:
            raw, origin = environ[env], f"env {env}"
        if raw is None:
            continue
        try:
            values[f.name] = _CONVERT[f.metadata["kind"]](raw, f.metadata)
        except ValueError as exc:
            shown = f"-{f.metadata['flags'][0]}" if f.metadata["flags"] else "URI"
            problems.append(f"{shown}: {exc}" if origin == "flag" else f"{shown} ({origin}): {exc}")
    problems.extend(_cross_checks(values))
    if problems:
        raise ConfigError(problems)
    return Settings(**values)


_BOOL_FLAG = re.compile(r"--?([A-Za-z][A-Za-z-]*)=(.*)", re.DOTALL)


def _split_inline_bools(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Go's `-internal=false` form for boolean flags, which argparse's store_const refuses."""
    bool_flags = {
        name: f.name
        for f in fields(Settings)
        if f.metadata["kind"] == "bool"
        for name in f.metadata["flags"]
    }
    rest: list[str] = []
    inline: dict[str, str] = {}
    for arg in argv:
        m = _BOOL_FLAG.fullmatch(arg)
        if m and m.group(1) in bool_flags:
            inline[bool_flags[m.group(1)]] = m.group(2)
        else:
            rest.append(arg)
    return rest, inline


def _to_bool(raw: Any, _: Mapping[str, Any]) -> bool:
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{raw!r} is not a boolean (true/false, 1/0, yes/no)")


def _to_int(raw: Any, _: Mapping[str, Any]) -> int:
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not an integer") from None


def _to_non_negative(raw: Any, meta: Mapping[str, Any]) -> int:
    value = _to_int(raw, meta)
    if value < 0:
        raise ValueError(f"{value} is negative")
    return value


def _to_float(raw: Any, _: Mapping[str, Any]) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None
    if value < 0:
        raise ValueError(f"{value} is negative")
    return value


def _to_str(raw: Any, _: Mapping[str, Any]) -> str:
    text = str(raw).strip()
    if not text:
        raise ValueError("is empty")
    return text


def _to_choice(raw: Any, meta: Mapping[str, Any]) -> str:
    text = str(raw).strip().lower()
    if text not in meta["choices"]:
        raise ValueError(f"{raw!r} is not one of {', '.join(meta['choices'])}")
    return text


def _to_csv(raw: Any, _: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(t.strip() for t in str(raw).split(",") if t.strip())


def _to_list(raw: Any, meta: Mapping[str, Any]) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else [raw]
    out = tuple(t for item in items for t in _to_csv(item, meta))
    if not out:
        raise ValueError("needs at least one value")
    return out


def parse_uri(raw: str) -> RegistryURI:
    """`consul://host:port`, `consul-tls://host:port`, `consul-unix:///path`, `local://`."""
    text = raw.strip()
    if text in ("", "local", "local://"):
        return RegistryURI("local")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "local":
        raise ValueError(f"{raw!r}: local:// takes no host or path")
    if scheme == "consul-unix":
        path = (parts.netloc + parts.path) if parts.netloc else parts.path
        if not path:
            raise ValueError(f"{raw!r}: consul-unix:// needs a socket path (consul-unix:///path)")
        return RegistryURI("consul-unix", path=path)
    if scheme not in ("consul", "consul-tls"):
        raise ValueError(
            f"{raw!r}: unknown registry scheme {scheme or '(none)'!r}; use local://, consul://, "
            "consul-tls:// or consul-unix://"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{raw!r}: a consul URI is scheme://host:port with nothing after it")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{raw!r}: the port is not a number between 0 and 65535") from None
    return RegistryURI(scheme, host=parts.hostname or "", port=port)  # type: ignore[arg-type]


def _to_uri(raw: Any, _: Mapping[str, Any]) -> RegistryURI:
    return parse_uri(str(raw))


_CONVERT: dict[str, Callable[[Any, Mapping[str, Any]], Any]] = {
    "bool": _to_bool,
    "int": _to_int,
    "float": _to_float,
    "seconds": _to_non_negative,
    "millis": _to_non_negative,
    "str": _to_str,
    "choice": _to_choice,
    "csv": _to_csv,
    "list": _to_list,
    "uri": _to_uri,
}


def _cross_checks(values: Mapping[str, Any]) -> list[str]:
    problems = []
    ip = values.get("ip")
    if ip is not None:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            problems.append(f"-ip: {ip!r} is not an IPv4 or IPv6 address")
    node = values.get("node")
    if node is not None and ":" in node:
        problems.append(f"-node: {node!r} contains ':', which separates the parts of service IDs")
    ttl, refresh = values.get("ttl", 0), values.get("ttl_refresh", 0)
    if bool(ttl) != bool(refresh):
        problems.append("-ttl and -ttl-refresh must be set together")
    elif ttl and refresh >= ttl:
        problems.append(f"-ttl-refresh ({refresh}) must be smaller than -ttl ({ttl})")
    if values.get("retry_attempts", 0) < -1:
        problems.append("-retry-attempts: use -1 for forever, 0 or more for a count")
    for name in ("http_addr", "dns_addr"):
        text = values.get(name)
        if (
            text is not None
            and text != "off"
            and not re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\s]*):\d{1,5}", text)
        ):
            problems.append(f"-{name.replace('_', '-')}: {text!r} is not HOST:PORT or off")
    for glob in values.get("port_env", ()):
        if not re.fullmatch(r"[A-Za-z0-9_*?]+", glob):
            problems.append(f"-port-env: {glob!r} may hold only letters, digits, _, * and ?")
    for glob in values.get("watch_services", ()):
        if not re.fullmatch(r"[A-Za-z0-9._*?-]+", glob):
            problems.append(
                f"-watch-services: {glob!r} may hold only letters, digits, ., _, -, * and ?"
            )
    return problems
