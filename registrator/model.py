"""Domain types. Docker's inspect JSON is parsed here, once, into frozen dataclasses; nothing
downstream ever sees a raw Docker dict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from registrator.errors import InspectError

Protocol = Literal["tcp", "udp", "sctp"]
_PROTOCOLS: frozenset[str] = frozenset({"tcp", "udp", "sctp"})


@dataclass(frozen=True, slots=True)
class PortBinding:
    host_ip: str  # "" when Docker left it empty (all interfaces)
    host_port: int


@dataclass(frozen=True, slots=True)
class ContainerPort:
    """A port the container exposes (EXPOSE, `--expose`, `-p`), with its published bindings."""

    port: int
    protocol: Protocol
    bindings: tuple[PortBinding, ...] = ()


@dataclass(frozen=True, slots=True)
class Network:
    name: str
    ipv4: str  # "" when the network gives none
    ipv6: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Container:
    id: str
    name: str  # without Docker's leading "/"
    image: str  # as the user named it (Config.Image), e.g. "registry:5000/acme/web:1.2"
    env: Mapping[str, str]
    labels: Mapping[str, str]
    network_mode: str  # "default", "bridge", "host", "none", "container:<id>" or a network name
    networks: tuple[Network, ...]
    ports: tuple[ContainerPort, ...]
    running: bool = True
    paused: bool = False
    restarting: bool = False
    exit_code: int = 0
    health: str | None = (
        None  # "starting" | "healthy" | "unhealthy" when the image has a HEALTHCHECK
    )

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def host_network(self) -> bool:
        return self.network_mode == "host"

    @classmethod
    def from_inspect(cls, raw: Mapping[str, Any]) -> Container:
        """Parse `GET /containers/{id}/json`; InspectError when a required part is missing."""
        try:
            return _parse(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            cid = str(raw.get("Id", "?"))[:12]
            raise InspectError(f"container {cid}: unexpected inspect JSON ({exc!r})") from exc


def _parse(raw: Mapping[str, Any]) -> Container:
    config = raw["Config"]
    host_config = raw.get("HostConfig") or {}
    net_settings = raw.get("NetworkSettings") or {}
    state = raw.get("State") or {}
    health = (state.get("Health") or {}).get("Status") or None

    ports: dict[tuple[int, str], list[PortBinding]] = {}
    for spec in config.get("ExposedPorts") or {}:
        ports.setdefault(_port_key(spec), [])
    for spec, bindings in (net_settings.get("Ports") or {}).items():
        key = _port_key(spec)
        ports.setdefault(key, [])
        for b in bindings or ():
            if b.get("HostPort"):
                ports[key].append(PortBinding(b.get("HostIp") or "", int(b["HostPort"])))

    networks = tuple(
        Network(name, n.get("IPAddress") or "", n.get("GlobalIPv6Address") or "")
        for name, n in sorted((net_settings.get("Networks") or {}).items())
    )
    return Container(
        id=raw["Id"],
        name=str(raw.get("Name") or "").lstrip("/"),
        image=config.get("Image") or "",
        env=MappingProxyType(_parse_env(config.get("Env") or ())),
        labels=MappingProxyType(dict(config.get("Labels") or {})),
        network_mode=host_config.get("NetworkMode") or "default",
        networks=networks,
        ports=tuple(
            ContainerPort(port, proto, tuple(bindings))  # type: ignore[arg-type]
            for (port, proto), bindings in sorted(ports.items())
        ),
        running=bool(state.get("Running", False)),
        paused=bool(state.get("Paused", False)),
        restarting=bool(state.get("Restarting", False)),
        exit_code=int(state.get("ExitCode") or 0),
        health=health,
    )


def _port_key(spec: str) -> tuple[int, str]:
    number, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in _PROTOCOLS:
        raise ValueError(f"unknown protocol in port {spec!r}")
    return int(number), proto


def _parse_env(env: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, sep, value = str(item).partition("=")
        if sep:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# What gets registered


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One Consul health check, already resolved against the service's address and port."""

    check_id: str | None = None  # None: Consul's default, service:<id>[:<n>]
    http: str | None = None
    method: str | None = None
    tcp: str | None = None
    grpc: str | None = None
    grpc_use_tls: bool = False
    tls_skip_verify: bool = False
    args: tuple[str, ...] = ()
    ttl: str | None = None
    interval: str | None = None
    timeout: str | None = None
    status: str | None = None
    deregister_after: str | None = None

    @property
    def kind(self) -> str:
        for kind, value in (
            ("http", self.http),
            ("tcp", self.tcp),
            ("grpc", self.grpc),
            ("script", self.args),
            ("ttl", self.ttl),
        ):
            if value:
                return kind
        return "none"

    def to_consul(self) -> dict[str, Any]:
        """The check object in Consul's `/v1/agent/service/register` spelling."""
        body: dict[str, Any] = {}
        if self.check_id:
            body["CheckID"] = self.check_id
        if self.http:
            body["HTTP"] = self.http
            if self.method:
                body["Method"] = self.method
        if self.tcp:
            body["TCP"] = self.tcp
        if self.grpc:
            body["GRPC"] = self.grpc
            if self.grpc_use_tls:
                body["GRPCUseTLS"] = True
        if self.args:
            body["Args"] = list(self.args)
        if self.tls_skip_verify:
            body["TLSSkipVerify"] = True
        if self.ttl:
            body["TTL"] = self.ttl
        if self.interval:
            body["Interval"] = self.interval
        if self.timeout:
            body["Timeout"] = self.timeout
        if self.status:
            body["Status"] = self.status
        if self.deregister_after:
            body["DeregisterCriticalServiceAfter"] = self.deregister_after
        return body


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceInstance:
    """One registration: what the daemon `PUT`s to `/v1/agent/service/register`."""

    id: str
    name: str
    address: str
    port: int
    protocol: Protocol = field(default="tcp", compare=False)  # shown by the ID suffix and tag
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()  # sorted by key, so equality ignores input order
    checks: tuple[Check, ...] = ()
    container_id: str = field(default="", compare=False)
    container_name: str = field(default="", compare=False)

    def to_consul(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ID": self.id,
            "Name": self.name,
            "Tags": list(self.tags),
            "Address": self.address,
            "Port": self.port,
            "Meta": dict(self.meta),
        }
        if len(self.checks) == 1:
            body["Check"] = self.checks[0].to_consul()
        elif self.checks:
            body["Checks"] = [c.to_consul() for c in self.checks]
        return body


@dataclass(frozen=True, slots=True)
class Skip:
    """Something the mapping left out or changed, and why; `reason` is a snake_case code."""

    container: str  # container name
    reason: str
    detail: str
    port: str | None = None  # "8080/tcp", or None for the whole container
    service_id: str | None = None
    adjusted: bool = False  # True: the service is registered, with this part dropped or changed

    @property
    def event(self) -> str:
        """The log event name for this entry."""
        if self.adjusted:
            return "registration_adjusted"
        return "container_skipped" if self.port is None else "port_skipped"

    def as_log(self) -> dict[str, str]:
        out = {"container": self.container, "reason": self.reason, "detail": self.detail}
        if self.port is not None:
            out["port"] = self.port
        if self.service_id is not None:
            out["service_id"] = self.service_id
        return out


# ---------------------------------------------------------------------------------------------
# What the registry holds: the snapshot the DNS responder and the proxy writer read

Health = Literal["passing", "warning", "critical"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogInstance:
    """One registered instance as the registry sees it (any node, in Consul mode)."""

    node: str
    node_address: str
    service: ServiceInstance
    status: Health = "passing"  # aggregated over the instance's checks (and its node's)
    weights: tuple[int, int] = (1, 1)  # Consul Weights (Passing, Warning): SRV weights


@dataclass(frozen=True, slots=True)
class CatalogSnapshot:
    """An immutable view of the whole registry. Consumers swap references, never mutate."""

    instances: tuple[CatalogInstance, ...] = ()
    nodes: tuple[tuple[str, str], ...] = ()  # (node name, node address), sorted
    version: int = 0  # grows with every published change
