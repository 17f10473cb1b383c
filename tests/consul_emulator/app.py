"""The aiohttp application: Consul's ``/v1`` routes plus the ``/_emulator/`` test hooks.

Routing is done here rather than by aiohttp's router so that the raw path is percent-decoded
exactly once and never cleaned, and so that 404/405 answers carry Consul's texts and ``Allow``
header. Every ``/v1`` answer carries ``X-Consul-Default-ACL-Policy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote

from aiohttp import web
from multidict import MultiMapping

from . import decode as dec
from .acl import Acl, AclNotFoundError, Identity, PermissionDeniedError, RuleSpec
from .bexpr import BexprError, BexprEvalError, Expression, compile_filter
from .clock import Clock, VirtualClock
from .gotypes import GoDurationError, format_duration, go_json, go_quote, parse_bool, parse_duration
from .hooks import FaultTable, RequestLog
from .state import (
    CRITICAL,
    PASSING,
    VALID_STATUSES,
    WARNING,
    CatalogError,
    CheckSpec,
    Node,
    NotTTLError,
    Service,
    ServiceAddress,
    ServiceEntry,
    Store,
    aggregated_status,
)
from .views import (
    JSONObj,
    agent_service_json,
    check_entry_json,
    check_service_node_json,
    content_hash,
    health_check_json,
    node_json,
    node_service_json,
    service_node_json,
)

__all__ = ["Backend", "EmulatorConfig", "HTTPError", "build_app"]

log = logging.getLogger("consul_emulator")

CONSUL_VERSION: Final = "1.21.0"
SERVER_PORT: Final = 8300


@dataclass(frozen=True)
class EmulatorConfig:
    """Agent settings (spec section 2); timings in seconds."""

    node_name: str = "node1"
    datacenter: str = "dc1"
    advertise_addr: str = "127.0.0.1"
    node_id: str | None = None
    version: str = CONSUL_VERSION
    include_consul_service: bool = True
    check_reap_interval: float = 30.0
    dcsa_min: float = 60.0
    default_query_time: float = 300.0
    max_query_time: float = 600.0
    acl_master_token: str | None = None
    acl_tokens: Mapping[str, tuple[RuleSpec, ...]] = field(default_factory=dict)


class HTTPError(Exception):
    """An answer with a status code and a plain-text body (Consul's ``HTTPError``)."""

    def __init__(self, status: int, text: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = dict(headers or {})


class Backend:
    """Everything the HTTP layer works on: store, clock, ACLs, hooks, wake-ups."""

    def __init__(self, config: EmulatorConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or VirtualClock()
        self.store = Store(
            clock=self.clock,
            node_name=config.node_name,
            node_id=config.node_id,
            datacenter=config.datacenter,
            address=config.advertise_addr,
            version=config.version,
            include_consul_service=config.include_consul_service,
            check_reap_interval=config.check_reap_interval,
            dcsa_min=config.dcsa_min,
        )
        self.acl = Acl(config.acl_master_token, config.acl_tokens)
        self.faults = FaultTable()
        self.requests = RequestLog()
        self.no_leader = False
        self.draining = False
        self._event = asyncio.Event()
        self.store.add_listener(self.notify)
        self.restart_listener: Callable[[float], Coroutine[Any, Any, None]] | None = None
        self.background: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background; the emulator cancels leftovers when it stops."""
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def notify(self) -> None:
        """Wake every waiter (blocking queries, the timer task) to re-check its condition."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    def current_event(self) -> asyncio.Event:
        return self._event

    def advance(self, seconds: float) -> None:
        """Move the virtual clock and run whatever became due."""
        self.clock.advance(seconds)
        self.store.run_due()
        self.notify()

    async def wait_until(self, deadline: float, ready: Callable[[], bool]) -> None:
        """Return when ``ready()`` holds, the clock passes ``deadline`` or the listener drains."""
        while not self.draining and not ready():
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                return
            event = self._event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)


# --- small helpers ------------------------------------------------------------------------------

_IS_ANY: Final = frozenset({"0.0.0.0", "::", "[::]"})
_META_KEY_RE: Final = re.compile(r"^[a-zA-Z0-9_-]+$")
_STATUS_TEXT: Final = "Status for checks must 'passing', 'warning', 'critical'"


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_ipv4(text: str) -> bool:
    ip = _parse_ip(text)
    if isinstance(ip, ipaddress.IPv4Address):
        return True
    return isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None


def _is_ipv6(text: str) -> bool:
    ip = _parse_ip(text)
    return isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None


def _validate_meta(meta: Mapping[str, str]) -> str | None:
    if len(meta) > 64:
        return "Node metadata cannot contain more than 64 key/value pairs"
    for key, value in meta.items():
        reason = None
        if key == "":
            reason = "Key cannot be blank"
        elif not _META_KEY_RE.match(key):
            reason = "Key contains invalid characters"
        elif len(key.encode()) > 128:
            reason = "Key is too long (limit: 128 characters)"
        elif key.startswith("consul-"):
            reason = "Key prefix 'consul-' is reserved for internal use"
        elif len(value.encode()) > 512:
            reason = "Value is too long (limit: 512 characters)"
        if reason:
            return f"Couldn't load metadata pair ('{key}', '{value}'): {reason}"
    return None


def _validate_weights(passing: int, warning: int) -> str | None:
    if passing < 1:
        return "Passing must be greater than 0"
    if warning < 0:
        return "Warning must be greater or equal than 0"
    if passing > 65535 or warning > 65535:
        return "DNS Weight must be between 0 and 65535"
    return None


def _multierror(errors: list[str]) -> str:
    noun = "error" if len(errors) == 1 else "errors"
    items = "".join(f"\t* {e}\n" for e in errors)
    return f"{len(errors)} {noun} occurred:\n{items}\n"


_ACTIVE_KEYS: Final = ("HTTP", "TCP", "UDP", "GRPC", "H2PING", "OSService")


def _check_is_empty(check: Mapping[str, Any]) -> bool:
    """Go's ``CheckType.Empty()``: every field at its zero value (an empty list is not zero)."""
    return all(v in ("", 0, False) and not isinstance(v, (list, dict)) for v in check.values())


def _validate_check(check: Mapping[str, Any]) -> str | None:
    """``CheckType.Validate`` (spec section 4)."""
    interval = int(check.get("Interval", 0))
    ttl = int(check.get("TTL", 0))
    active = bool(check.get("ScriptArgs")) or any(check.get(k) for k in _ACTIVE_KEYS)
    alias = bool(check.get("AliasNode") or check.get("AliasService"))
    if interval > 0 and ttl > 0:
        return "Interval and TTL cannot both be specified"
    if active and interval <= 0:
        return "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
    if alias and interval > 0:
        return "Interval cannot be set for Alias checks"
    if alias and ttl > 0:
        return "TTL must be not be set for Alias checks"
    if not active and not alias and ttl <= 0:
        return "TTL must be > 0 for TTL checks"
    if int(check.get("OutputMaxSize", 0)) < 0:
        return "MaxOutputMaxSize must be positive"
    if int(check.get("FailuresBeforeWarning", 0)) > int(check.get("FailuresBeforeCritical", 0)):
        return "FailuresBeforeWarning can't be higher than FailuresBeforeCritical"
    return None


def _check_type(check: Mapping[str, Any]) -> str:
    interval = int(check.get("Interval", 0))
    if check.get("GRPC") and interval > 0:
        return "grpc"
    if check.get("HTTP") and interval > 0:
        return "http"
    if int(check.get("TTL", 0)) > 0:
        return "ttl"
    if check.get("TCP") and interval > 0:
        return "tcp"
    if check.get("UDP") and interval > 0:
        return "udp"
    if check.get("AliasNode") or check.get("AliasService"):
        return "alias"
    if check.get("DockerContainerID") and check.get("ScriptArgs") and interval > 0:
        return "docker"
    if check.get("ScriptArgs") and interval > 0:
        return "script"
    if check.get("H2PING") and interval > 0:
        return "h2ping"
    if check.get("OSService") and interval > 0:
        return "os_service"
    return ""


_DEFINITION_ORDER: Final = (
    "HTTP",
    "TLSServerName",
    "TLSSkipVerify",
    "Header",
    "Method",
    "Body",
    "DisableRedirects",
    "TCP",
    "TCPUseTLS",
    "UDP",
    "H2PING",
    "H2PingUseTLS",
    "OSService",
    "Interval",
    "OutputMaxSize",
    "Timeout",
    "DeregisterCriticalServiceAfter",
    "ScriptArgs",
    "DockerContainerID",
    "Shell",
    "GRPC",
    "GRPCUseTLS",
    "AliasNode",
    "AliasService",
)
_DURATION_KEYS: Final = frozenset({"Interval", "Timeout", "DeregisterCriticalServiceAfter"})


def _definition(check: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _DEFINITION_ORDER:
        value = check.get(key)
        if not value:
            continue
        out[key] = format_duration(int(value)) if key in _DURATION_KEYS else value
    return out


def _dur(check: Mapping[str, Any], key: str) -> str:
    value = int(check.get(key, 0))
    return format_duration(value) if value else ""


def _check_spec(check: Mapping[str, Any], check_id: str, name: str, service_id: str) -> CheckSpec:
    ttl_ns = int(check.get("TTL", 0))
    dcsa_ns = int(check.get("DeregisterCriticalServiceAfter", 0))
    return CheckSpec(
        check_id=check_id,
        name=name,
        status=str(check.get("Status", "")) or CRITICAL,
        notes=str(check.get("Notes", "")),
        type=_check_type(check),
        interval=_dur(check, "Interval"),
        timeout=_dur(check, "Timeout"),
        definition=_definition(check),
        ttl=ttl_ns / 1e9 if ttl_ns > 0 else None,
        deregister_after=dcsa_ns / 1e9 if dcsa_ns > 0 else None,
        output_max_size=int(check.get("OutputMaxSize", 0)) or 4096,
        service_id=service_id,
    )


def _parse_token(request: web.Request) -> str:
    """``?token=`` > ``X-Consul-Token`` > ``Authorization: Bearer <t>``."""
    tok = request.query.get("token", "")
    if tok:
        return tok
    tok = request.headers.get("X-Consul-Token", "")
    if tok:
        return tok
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        words = value.split()
        if words:
            return words[0]
    return ""


@dataclass
class _Req:
    http: web.Request
    path: str
    rest: str
    token: str

    @property
    def query(self) -> MultiMapping[str]:
        return self.http.query

    def has(self, name: str) -> bool:
        return name in self.http.query

    def get(self, name: str, default: str = "") -> str:
        return self.http.query.get(name, default)

    @property
    def pretty(self) -> bool:
        return "pretty" in self.http.query


@dataclass
class _QueryOpts:
    min_index: int = 0
    wait: float = 0.0
    consistency: str = "leader"
    filter: str = ""


Handler = Callable[[_Req], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class _Route:
    methods: tuple[str, ...]
    handler: Handler

    @property
    def allow(self) -> str:
        return ",".join(("OPTIONS", *self.methods))


def _plain(status: int, text: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=text, content_type="text/plain", charset="utf-8", headers=headers
    )


class _Api:
    """Consul's ``/v1`` endpoints."""

    def __init__(self, backend: Backend) -> None:
        self.b = backend
        self.exact: dict[str, _Route] = {}
        self.prefix: list[tuple[str, _Route]] = []
        get, put = ("GET",), ("PUT",)
        self._add("/v1/agent/self", get, self.agent_self)
        self._add("/v1/agent/services", get, self.agent_services)
        self._add("/v1/agent/service/", get, self.agent_service)
        self._add("/v1/agent/checks", get, self.agent_checks)
        self._add("/v1/agent/service/register", put, self.agent_service_register)
        self._add("/v1/agent/service/deregister/", put, self.agent_service_deregister)
        self._add("/v1/agent/service/maintenance/", put, self.agent_service_maintenance)
        self._add("/v1/agent/maintenance", put, self.agent_node_maintenance)
        self._add("/v1/agent/check/register", put, self.agent_check_register)
        self._add("/v1/agent/check/deregister/", put, self.agent_check_deregister)
        self._add("/v1/agent/check/pass/", put, self._ttl_handler(PASSING))
        self._add("/v1/agent/check/warn/", put, self._ttl_handler(WARNING))
        self._add("/v1/agent/check/fail/", put, self._ttl_handler(CRITICAL))
        self._add("/v1/agent/check/update/", put, self.agent_check_update)
        self._add("/v1/agent/health/service/id/", get, self.agent_health_service_id)
        self._add("/v1/catalog/register", put, self.catalog_register)
        self._add("/v1/catalog/deregister", put, self.catalog_deregister)
        self._add("/v1/catalog/services", get, self.catalog_services)
        self._add("/v1/catalog/service/", get, self.catalog_service)
        self._add("/v1/catalog/nodes", get, self.catalog_nodes)
        self._add("/v1/catalog/node/", get, self.catalog_node)
        self._add("/v1/health/service/", get, self.health_service)
        self._add("/v1/health/connect/", get, self.health_mesh)
        self._add("/v1/health/ingress/", get, self.health_mesh)
        self._add("/v1/health/checks/", get, self.health_checks)
        self._add("/v1/health/node/", get, self.health_node)
        self._add("/v1/health/state/", get, self.health_state)
        self._add("/v1/status/leader", get, self.status_leader)
        self._add("/v1/status/peers", get, self.status_peers)
        self.prefix.sort(key=lambda item: len(item[0]), reverse=True)

    def _add(self, pattern: str, methods: tuple[str, ...], handler: Handler) -> None:
        route = _Route(methods, handler)
        if pattern.endswith("/"):
            self.prefix.append((pattern, route))
        else:
            self.exact[pattern] = route

    def match(self, path: str) -> tuple[_Route, str] | None:
        route = self.exact.get(path)
        if route is not None:
            return route, ""
        for prefix, route in self.prefix:
            if path.startswith(prefix):
                return route, path[len(prefix) :]
        return None

    # --- shared plumbing ------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        return self.b.store

    def json(
        self, req: _Req, value: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        return web.Response(
            status=status,
            text=go_json(value, pretty=req.pretty),
            content_type="application/json",
            headers=headers,
        )

    @staticmethod
    def empty() -> web.Response:
        return web.Response(status=200)

    def identity(self, req: _Req) -> Identity:
        try:
            return self.b.acl.resolve(req.token)
        except AclNotFoundError:
            raise HTTPError(403, "ACL not found") from None

    def require(self, ident: Identity, resource: str, name: str, access: str) -> None:
        try:
            self.b.acl.require(ident, resource, name, access)
        except PermissionDeniedError as exc:
            raise HTTPError(403, str(exc)) from None

    def can(self, ident: Identity, resource: str, name: str, access: str = "read") -> bool:
        return self.b.acl.allowed(ident, resource, name, access)

    def check_leader_for_write(self) -> None:
        if self.b.no_leader:
            raise HTTPError(500, "No cluster leader")

    async def body(self, req: _Req, schema: dec.Schema) -> dict[str, Any]:
        raw = await req.http.read()
        try:
            return dec.decode_body(schema, raw)
        except dec.DecodeError as exc:
            raise HTTPError(400, f"Request decode failed: {exc}") from None

    def check_ent(self, req: _Req) -> None:
        if req.http.headers.get("X-Consul-Namespace", "") not in ("", "default"):
            raise HTTPError(
                400,
                'Invalid header: "X-Consul-Namespace" - Namespaces are a Consul Enterprise feature',
            )
        if req.get("ns") not in ("", "default"):
            raise HTTPError(
                400, 'Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature'
            )
        if req.get("partition") not in ("", "default"):
            raise HTTPError(
                400,
                'Invalid query parameter: "partition" - Partitions are a Consul Enterprise feature',
            )

    def check_dc(self, dc: str) -> None:
        if dc and dc != self.b.config.datacenter:
            raise HTTPError(500, "No path to datacenter")

    def parse_query(self, req: _Req) -> _QueryOpts:
        """``parseConsistency`` then ``parseWait`` (the order Consul checks them in)."""
        opts = _QueryOpts(filter=req.get("filter"))
        stale = req.has("stale")
        max_stale = req.get("max_stale")
        if max_stale:
            try:
                if parse_duration(max_stale) > 0:
                    stale = True
            except GoDurationError:
                raise HTTPError(400, f"Invalid max_stale value {go_quote(max_stale)}") from None
        consistent = req.has("consistent")
        if stale and consistent:
            raise HTTPError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
        opts.consistency = "stale" if stale else "consistent" if consistent else "leader"
        wait = req.get("wait")
        if wait:
            try:
                opts.wait = parse_duration(wait) / 1e9
            except GoDurationError:
                raise HTTPError(400, "Invalid wait time") from None
        index = req.get("index")
        if index:
            if not index.isdigit() or not index.isascii() or int(index) >= 1 << 64:
                raise HTTPError(400, "Invalid index")
            opts.min_index = int(index)
        return opts

    def query_deadline(self, wait: float) -> float:
        cfg = self.b.config
        if wait <= 0:
            wait = cfg.default_query_time
        wait = min(wait, cfg.max_query_time)
        wait += random.uniform(0, wait / 16)
        return self.b.clock.now() + wait

    def compile(self, text: str) -> Expression | None:
        if not text:
            return None
        try:
            return compile_filter(text)
        except BexprError as exc:
            raise HTTPError(500, f"Failed to create boolean expression evaluator: {exc}") from None

    @staticmethod
    def apply_filter(
        expr: Expression | None, items: list[Any], datum: Callable[[Any], Any]
    ) -> list[Any]:
        if expr is None:
            return items
        try:
            return [item for item in items if expr.matches(datum(item))]
        except BexprEvalError as exc:
            raise HTTPError(500, str(exc)) from None

    @staticmethod
    def node_meta_filter(req: _Req) -> dict[str, str]:
        meta: dict[str, str] = {}
        for raw in req.query.getall("node-meta", []):
            key, _, value = raw.partition(":")
            meta[key] = value
        return meta

    @staticmethod
    def node_matches(node: Node | None, meta: Mapping[str, str]) -> bool:
        if not meta:
            return True
        if node is None:
            return False
        return all(node.meta.get(k) == v for k, v in meta.items())

    async def blocking_read(
        self,
        req: _Req,
        index_fn: Callable[[], int],
        result_fn: Callable[[Identity, _QueryOpts], tuple[Any, bool]],
        *,
        check_name: Callable[[], None] | None = None,
    ) -> web.Response:
        """Shared shape of catalog/health reads: parse, validate, block, answer with headers."""
        self.check_ent(req)
        opts = self.parse_query(req)
        if check_name is not None:
            check_name()
        self.check_dc(req.get("dc"))
        if self.b.no_leader and opts.consistency != "stale":
            raise HTTPError(500, "No cluster leader")
        ident = self.identity(req)
        self.compile(opts.filter)
        if opts.min_index > 0:
            deadline = self.query_deadline(opts.wait)
            await self.b.wait_until(deadline, lambda: index_fn() > opts.min_index)
        index = max(1, index_fn())
        result, filtered = result_fn(ident, opts)
        headers = {
            "X-Consul-Index": str(index),
            "X-Consul-KnownLeader": "false" if self.b.no_leader else "true",
            "X-Consul-LastContact": "0",
            "X-Consul-Effective-Consistency": opts.consistency,
            "X-Consul-Query-Backend": "blocking-query",
        }
        if req.has("cached"):
            headers["X-Cache"] = "MISS"
            headers["Age"] = "0"
        if filtered and ident.token_sent:
            headers["X-Consul-Results-Filtered-By-ACLs"] = "true"
        return self.json(req, result, headers=headers)

    def acl_list_headers(self, ident: Identity, filtered: bool) -> dict[str, str]:
        if filtered and ident.token_sent:
            return {"X-Consul-Results-Filtered-By-ACLs": "true"}
        return {}

    def local_node(self) -> Node:
        node = self.store.node(self.store.node_name)
        if node is None:  # deleted through catalog/deregister; the next sync restores it
            node = self.store.local_node_template()
        return node

    # --- agent ----------------------------------------------------------------------------------

    async def agent_self(self, req: _Req) -> web.StreamResponse:
        ident = self.identity(req)
        self.require(ident, "agent", self.store.node_name, "read")
        cfg = self.b.config
        st = self.store
        node = self.local_node()
        addr = cfg.advertise_addr
        body = {
            "Config": {
                "Datacenter": cfg.datacenter,
                "PrimaryDatacenter": cfg.datacenter,
                "NodeName": st.node_name,
                "NodeID": st.node_id,
                "Revision": "emulator",
                "Server": True,
                "Version": cfg.version,
                "BuildDate": "2025-01-01T00:00:00Z",
            },
            "DebugConfig": {
                "Datacenter": cfg.datacenter,
                "NodeName": st.node_name,
                "NodeID": st.node_id,
                "ACLsEnabled": self.b.acl.enabled,
                "ACLResolverSettings": {"ACLDefaultPolicy": self.b.acl.default_policy},
                "CheckReapInterval": format_duration(round(cfg.check_reap_interval * 1e9)),
                "CheckDeregisterIntervalMin": format_duration(round(cfg.dcsa_min * 1e9)),
                "DefaultQueryTime": format_duration(round(cfg.default_query_time * 1e9)),
                "MaxQueryTime": format_duration(round(cfg.max_query_time * 1e9)),
            },
            "Coord": None,
            "Member": {
                "Name": st.node_name,
                "Addr": addr,
                "Port": 8301,
                "Tags": {
                    "acls": "1" if self.b.acl.enabled else "0",
                    "bootstrap": "1",
                    "build": f"{cfg.version}:emulator",
                    "dc": cfg.datacenter,
                    "id": st.node_id,
                    "port": str(SERVER_PORT),
                    "raft_vsn": "3",
                    "role": "consul",
                    "segment": "",
                    "vsn": "2",
                    "vsn_max": "3",
                    "vsn_min": "2",
                    "wan_join_port": "8302",
                },
                "Status": 1,
                "ProtocolMin": 1,
                "ProtocolMax": 5,
                "ProtocolCur": 2,
                "DelegateMin": 2,
                "DelegateMax": 5,
                "DelegateCur": 4,
            },
            "Stats": {
                "agent": {
                    "check_monitors": "0",
                    "check_ttls": str(sum(1 for c in st.local_checks.values() if c.ttl)),
                    "checks": str(len(st.local_checks)),
                    "services": str(len(st.local_services)),
                },
                "consul": {
                    "bootstrap": "true",
                    "known_datacenters": "1",
                    "leader": "false" if self.b.no_leader else "true",
                    "leader_addr": "" if self.b.no_leader else f"{addr}:{SERVER_PORT}",
                    "server": "true",
                },
            },
            "Meta": dict(sorted(node.meta.items())),
        }
        return self.json(req, body)

    def _agent_service_view(self, svc: Service) -> JSONObj:
        return agent_service_json(svc, self.b.config.datacenter)

    async def agent_services(self, req: _Req) -> web.StreamResponse:
        ident = self.identity(req)
        expr = self.compile(req.get("filter"))
        services = [s for _, s in sorted(self.store.local_services.items())]
        visible = [s for s in services if self.can(ident, "service", s.name)]
        dc = self.b.config.datacenter
        kept = self.apply_filter(expr, visible, lambda s: agent_service_json(s, dc, full=True))
        body = {s.id: self._agent_service_view(s) for s in kept}
        headers = self.acl_list_headers(ident, len(visible) < len(services))
        return self.json(req, body, headers=headers)

    async def agent_service(self, req: _Req) -> web.StreamResponse:
        sid = req.rest
        wait = req.get("wait")
        wait_s = 0.0
        if wait:
            try:
                wait_s = parse_duration(wait) / 1e9
            except GoDurationError:
                raise HTTPError(400, "Invalid wait time") from None
        index = req.get("index")
        if index and not (index.isascii() and index.isdigit()):
            raise HTTPError(400, "Invalid index")
        want_hash = req.get("hash")

        def current() -> tuple[JSONObj, str] | None:
            svc = self.store.local_services.get(sid)
            if svc is None:
                return None
            view = self._agent_service_view(svc)
            return view, content_hash(view)

        def ready() -> bool:
            now = current()
            return now is None or now[1] != want_hash

        def found() -> tuple[JSONObj, str]:
            now = current()
            if now is None:
                raise HTTPError(404, f"unknown service ID: {sid}")
            return now

        ident = self.identity(req) if current() is not None else None
        if ident is not None:
            self.require(ident, "service", found()[0]["Service"], "read")
            if want_hash:
                await self.b.wait_until(self.query_deadline(wait_s), ready)
        view, digest = found()
        # api.AgentService puts ContentHash right after EnableTagOverride.
        ordered: JSONObj = {}
        for key, value in view.items():
            ordered[key] = value
            if key == "EnableTagOverride":
                ordered["ContentHash"] = digest
        return self.json(req, ordered, headers={"X-Consul-ContentHash": digest})

    def _local_check_json(self, check_id: str) -> JSONObj:
        local = self.store.local_checks[check_id]
        svc = self.store.local_services.get(local.check.service_id)
        return health_check_json(local.check, self.store.node_name, svc)

    def _can_read_check(self, ident: Identity, service_name: str) -> bool:
        if service_name:
            return self.can(ident, "service", service_name)
        return self.can(ident, "node", self.store.node_name)

    async def agent_checks(self, req: _Req) -> web.StreamResponse:
        ident = self.identity(req)
        expr = self.compile(req.get("filter"))
        ids = sorted(self.store.local_checks)
        views = [self._local_check_json(cid) for cid in ids]
        visible = [v for v in views if self._can_read_check(ident, v["ServiceName"])]
        kept = self.apply_filter(expr, visible, lambda v: v)
        headers = self.acl_list_headers(ident, len(visible) < len(views))
        return self.json(req, {v["CheckID"]: v for v in kept}, headers=headers)

    async def agent_service_register(self, req: _Req) -> web.StreamResponse:
        self.check_ent(req)
        data = await self.body(req, dec.SERVICE_DEFINITION)
        for key in ("Namespace", "Partition"):
            if data.get(key, "") not in ("", "default"):
                raise HTTPError(400, f'Request decode failed: json: unknown field "{key}"')
        name = str(data.get("Name", ""))
        if not name:
            raise HTTPError(400, "Missing service name")
        address = str(data.get("Address", ""))
        if address in _IS_ANY:
            raise HTTPError(400, "Invalid service address")
        ident = self.identity(req)
        weights = (1, 1)
        if "Weights" in data:
            raw_w = data["Weights"]
            weights = (int(raw_w.get("Passing", 0)), int(raw_w.get("Warning", 0)))
            problem = _validate_weights(*weights)
            if problem:
                raise HTTPError(400, f"Invalid Weights: {problem}")
        meta = dict(data.get("Meta") or {})
        problem = _validate_meta(meta)
        if problem:
            raise HTTPError(400, f"Invalid Service Meta: {problem}")
        sid = str(data.get("ID", "")) or name
        kind = str(data.get("Kind", ""))
        port = int(data.get("Port", 0))
        socket_path = str(data.get("SocketPath", ""))
        proxy = data.get("Proxy")
        if kind == "connect-proxy":
            errors = []
            dest = proxy.get("DestinationServiceName") if isinstance(proxy, dict) else None
            if not dest:
                errors.append(
                    "Proxy.DestinationServiceName must be non-empty for Connect proxy services"
                )
            if port == 0 and not socket_path:
                errors.append("Port or SocketPath must be set for a Connect proxy")
            if errors:
                raise HTTPError(400, f"Validation failed: {_multierror(errors)}")
        raw_checks: list[dict[str, Any]] = []
        if data.get("Check") and not _check_is_empty(data["Check"]):
            raw_checks.append(data["Check"])
        raw_checks.extend(data.get("Checks") or [])
        for raw in raw_checks:
            problem = _validate_check(raw)
            if problem:
                raise HTTPError(400, f"Invalid check: {problem}")
        for raw in raw_checks:
            status = str(raw.get("Status", ""))
            if status and status not in VALID_STATUSES:
                raise HTTPError(400, _STATUS_TEXT)
        self.require(ident, "service", name, "write")
        existing = self.store.local_services.get(sid)
        if existing is not None and existing.name != name:
            self.require(ident, "service", existing.name, "write")
        self.check_leader_for_write()
        tagged = {
            k: ServiceAddress(str(v.get("Address", "")), int(v.get("Port", 0)))
            for k, v in (data.get("TaggedAddresses") or {}).items()
        }
        if _is_ipv4(address):
            tagged.setdefault("lan_ipv4", ServiceAddress(address, port))
            tagged.setdefault("wan_ipv4", ServiceAddress(address, port))
        elif _is_ipv6(address):
            tagged.setdefault("lan_ipv6", ServiceAddress(address, port))
            tagged.setdefault("wan_ipv6", ServiceAddress(address, port))
        for key, family, test in (
            ("lan_ipv4", "ipv4", _is_ipv4),
            ("wan_ipv4", "ipv4", _is_ipv4),
            ("lan_ipv6", "ipv6", _is_ipv6),
            ("wan_ipv6", "ipv6", _is_ipv6),
        ):
            if key in tagged and not test(tagged[key].address):
                raise HTTPError(
                    500, f"Service tagged address {go_quote(key)} must be a valid {family} address"
                )
        service = Service(
            id=sid,
            name=name,
            kind=kind,
            tags=tuple(data.get("Tags") or ()),
            address=address,
            tagged_addresses=dict(sorted(tagged.items())),
            meta=meta,
            port=port,
            socket_path=socket_path,
            weights=weights,
            enable_tag_override=bool(data.get("EnableTagOverride", False)),
            proxy=proxy,
            connect=data.get("Connect"),
            locality=data.get("Locality"),
        )
        specs = []
        for position, raw in enumerate(raw_checks, start=1):
            check_id = str(raw.get("CheckID", ""))
            if not check_id:
                check_id = f"service:{sid}"
                if len(raw_checks) > 1:
                    check_id += f":{position}"
            check_name = str(raw.get("Name", "")) or f"Service '{name}' check"
            specs.append(_check_spec(raw, check_id, check_name, sid))
        replace_flag = req.query.getone("replace-existing-checks", None)
        replace = replace_flag is not None and replace_flag in ("", "true")
        self.store.register_service(service, specs, replace_existing_checks=replace)
        return self.empty()

    def vet_service(self, ident: Identity, sid: str) -> Service:
        svc = self.store.local_services.get(sid)
        if svc is None:
            raise HTTPError(
                404,
                f"Unknown service ID {go_quote(sid)}. "
                "Ensure that the service ID is passed, not the service name.",
            )
        self.require(ident, "service", svc.name, "write")
        return svc

    def vet_check(self, ident: Identity, cid: str) -> None:
        local = self.store.local_checks.get(cid)
        if local is None:
            raise HTTPError(
                404,
                f"Unknown check ID {go_quote(cid)}. "
                "Ensure that the check ID is passed, not the check name.",
            )
        svc = self.store.local_services.get(local.check.service_id)
        if local.check.service_id and svc is not None:
            self.require(ident, "service", svc.name, "write")
        else:
            self.require(ident, "node", self.store.node_name, "write")

    async def agent_service_deregister(self, req: _Req) -> web.StreamResponse:
        ident = self.identity(req)
        self.vet_service(ident, req.rest)
        self.check_leader_for_write()
        self.store.deregister_service(req.rest)
        return self.empty()

    @staticmethod
    def parse_enable(req: _Req) -> bool:
        if not req.has("enable"):
            raise HTTPError(400, "Missing value for enable")
        raw = req.get("enable")
        try:
            return parse_bool(raw)
        except ValueError:
            raise HTTPError(400, f"Invalid value for enable: {go_quote(raw)}") from None

    async def agent_service_maintenance(self, req: _Req) -> web.StreamResponse:
        if not req.rest:
            raise HTTPError(400, "Missing service ID")
        enable = self.parse_enable(req)
        ident = self.identity(req)
        self.vet_service(ident, req.rest)
        self.check_leader_for_write()
        self.store.set_service_maintenance(req.rest, enable, req.get("reason"))
        return self.empty()

    async def agent_node_maintenance(self, req: _Req) -> web.StreamResponse:
        enable = self.parse_enable(req)
        ident = self.identity(req)
        self.require(ident, "node", self.store.node_name, "write")
        self.check_leader_for_write()
        self.store.set_node_maintenance(enable, req.get("reason"))
        return self.empty()

    async def agent_check_register(self, req: _Req) -> web.StreamResponse:
        self.check_ent(req)
        data = await self.body(req, dec.CHECK_DEFINITION)
        name = str(data.get("Name", ""))
        if not name:
            raise HTTPError(400, "Missing check name")
        status = str(data.get("Status", ""))
        if status and status not in VALID_STATUSES:
            raise HTTPError(400, "Bad check status")
        ident = self.identity(req)
        problem = _validate_check(data)
        if problem:
            raise HTTPError(400, f"Invalid check: {problem}")
        sid = str(data.get("ServiceID", ""))
        if sid:
            svc = self.store.local_services.get(sid)
            if svc is None:
                raise HTTPError(404, f"ServiceID {go_quote(sid)} does not exist")
            self.require(ident, "service", svc.name, "write")
        else:
            self.require(ident, "node", self.store.node_name, "write")
        self.check_leader_for_write()
        cid = str(data.get("ID", "")) or name
        self.store.register_check(_check_spec(data, cid, name, sid))
        return self.empty()

    async def agent_check_deregister(self, req: _Req) -> web.StreamResponse:
        ident = self.identity(req)
        self.vet_check(ident, req.rest)
        self.check_leader_for_write()
        self.store.deregister_check(req.rest)
        return self.empty()

    def _ttl_update(self, cid: str, status: str, output: str) -> None:
        self.check_leader_for_write()
        try:
            self.store.update_ttl(cid, status, output)
        except NotTTLError:
            raise HTTPError(500, f"CheckID {go_quote(cid)} does not have associated TTL") from None

    def _ttl_handler(self, status: str) -> Handler:
        async def handler(req: _Req) -> web.StreamResponse:
            ident = self.identity(req)
            self.vet_check(ident, req.rest)
            self._ttl_update(req.rest, status, req.get("note"))
            return self.empty()

        return handler

    async def agent_check_update(self, req: _Req) -> web.StreamResponse:
        data = await self.body(req, dec.CHECK_UPDATE)
        status = str(data.get("Status", ""))
        if status not in VALID_STATUSES:
            raise HTTPError(400, f"Invalid check status: '{status}'")
        ident = self.identity(req)
        self.vet_check(ident, req.rest)
        self._ttl_update(req.rest, status, str(data.get("Output", "")))
        return self.empty()

    async def agent_health_service_id(self, req: _Req) -> web.StreamResponse:
        sid = req.rest
        text = req.get("format") == "text"
        svc = self.store.local_services.get(sid)
        if svc is None:
            reason = f"ServiceId {sid} not found"
            if text:
                return _plain(404, reason)
            body: JSONObj = {"AggregatedStatus": CRITICAL, "Service": None, "Checks": None}
            return self.json(req, body, status=404)
        ident = self.identity(req)
        self.require(ident, "service", svc.name, "read")
        checks = self.store.local_service_checks(sid)
        status = aggregated_status(checks)
        code = {PASSING: 200, WARNING: 429}.get(status, 503)
        if text:
            return _plain(code, status)
        views = [
            health_check_json(c, self.store.node_name, self.store.local_services.get(c.service_id))
            for c in checks
        ]
        body = {
            "AggregatedStatus": status,
            "Service": self._agent_service_view(svc),
            "Checks": views,
        }
        return self.json(req, body, status=code)

    # --- catalog --------------------------------------------------------------------------------

    async def catalog_register(self, req: _Req) -> web.StreamResponse:
        self.check_ent(req)
        data = await self.body(req, dec.REGISTER_REQUEST)
        self.check_dc(str(data.get("Datacenter", "")))
        ident = self.identity(req)
        node_name = str(data.get("Node", ""))
        if node_name and not data.get("SkipNodeUpdate"):
            self.require(ident, "node", node_name, "write")
        service = data.get("Service") or {}
        if service.get("Service"):
            self.require(ident, "service", str(service["Service"]), "write")
        self.check_leader_for_write()
        try:
            self.store.catalog_register(data)
        except CatalogError as exc:
            raise HTTPError(500, str(exc)) from None
        return self.json(req, True)

    async def catalog_deregister(self, req: _Req) -> web.StreamResponse:
        self.check_ent(req)
        data = await self.body(req, dec.DEREGISTER_REQUEST)
        self.check_dc(str(data.get("Datacenter", "")))
        ident = self.identity(req)
        node_name = str(data.get("Node", ""))
        sid = str(data.get("ServiceID", ""))
        if node_name and sid:
            for entry in self.store.node_service_entries(node_name):
                if entry.service.id == sid:
                    self.require(ident, "service", entry.service.name, "write")
        elif node_name:
            self.require(ident, "node", node_name, "write")
        self.check_leader_for_write()
        try:
            self.store.catalog_deregister(data)
        except CatalogError as exc:
            raise HTTPError(500, str(exc)) from None
        return self.json(req, True)

    def _instances(
        self, ident: Identity, entries: Iterable[ServiceEntry], meta: Mapping[str, str]
    ) -> tuple[list[tuple[Node, ServiceEntry]], bool]:
        """Instances whose node matches ``node-meta``, minus those the token may not read."""
        out: list[tuple[Node, ServiceEntry]] = []
        filtered = False
        for entry in entries:
            node = self.store.node(entry.node)
            if node is None or not self.node_matches(node, meta):
                continue
            if not (
                self.can(ident, "service", entry.service.name)
                and self.can(ident, "node", node.name)
            ):
                filtered = True
                continue
            out.append((node, entry))
        return out, filtered

    async def catalog_services(self, req: _Req) -> web.StreamResponse:
        meta = self.node_meta_filter(req)

        def result(ident: Identity, opts: _QueryOpts) -> tuple[Any, bool]:
            pairs, filtered = self._instances(ident, self.store.service_entries(), meta)
            expr = self.compile(opts.filter)
            pairs = self.apply_filter(
                expr, pairs, lambda p: service_node_json(p[0], p[1], full=True)
            )
            tags: dict[str, set[str]] = {}
            for _node, entry in pairs:
                tags.setdefault(entry.service.name, set()).update(entry.service.tags)
            return {name: sorted(tags[name]) for name in sorted(tags)}, filtered

        return await self.blocking_read(req, lambda: self.store.table_index("services"), result)

    def _missing(self, req: _Req, text: str) -> Callable[[], None]:
        def check() -> None:
            if not req.rest:
                raise HTTPError(400, text)

        return check

    def _tagged_entries(self, name: str, tags: list[str]) -> list[ServiceEntry]:
        """Instances of ``name`` carrying every tag in ``tags`` (both case-insensitive)."""
        wanted = {t.lower() for t in tags}
        return [
            e
            for e in self.store.service_entries(name)
            if wanted <= {t.lower() for t in e.service.tags}
        ]

    async def catalog_service(self, req: _Req) -> web.StreamResponse:
        name = req.rest
        meta = self.node_meta_filter(req)
        tags = req.query.getall("tag", [])

        def result(ident: Identity, opts: _QueryOpts) -> tuple[Any, bool]:
            entries = self._tagged_entries(name, tags)
            pairs, filtered = self._instances(ident, entries, meta)
            expr = self.compile(opts.filter)
            pairs = self.apply_filter(
                expr, pairs, lambda p: service_node_json(p[0], p[1], full=True)
            )
            return [service_node_json(n, e) for n, e in pairs], filtered

        return await self.blocking_read(
            req,
            lambda: self.store.service_index(name),
            result,
            check_name=self._missing(req, "Missing service name"),
        )

    async def catalog_nodes(self, req: _Req) -> web.StreamResponse:
        meta = self.node_meta_filter(req)

        def result(ident: Identity, opts: _QueryOpts) -> tuple[Any, bool]:
            nodes = [n for n in self.store.nodes() if self.node_matches(n, meta)]
            visible = [n for n in nodes if self.can(ident, "node", n.name)]
            kept = self.apply_filter(self.compile(opts.filter), visible, node_json)
            return [node_json(n) for n in kept], len(visible) < len(nodes)

        return await self.blocking_read(req, lambda: self.store.table_index("nodes"), result)

    async def catalog_node(self, req: _Req) -> web.StreamResponse:
        name = req.rest

        def result(ident: Identity, opts: _QueryOpts) -> tuple[Any, bool]:
            node = self.store.node(name)
            if node is None:
                return None, False
            if not self.can(ident, "node", node.name):
                return None, True
            entries = self.store.node_service_entries(node.name)
            visible = [e for e in entries if self.can(ident, "service", e.service.name)]
            kept = self.apply_filter(
                self.compile(opts.filter), visible, lambda e: node_service_json(e, full=True)
            )
            services = {e.service.id: node_service_json(e) for e in kept}
            return {"Node": node_json(node), "Services": services}, len(visible) < len(entries)

        return await self.blocking_read(
            req,
            lambda: self.store.table_index("nodes", "services"),
            result,
            check_name=self._missing(req, "Missing node name"),
        )

    # --- health ---------------------------------------------------------------------------------

    def _check_json(self, entry: Any) -> JSONObj:
        return check_entry_json(entry, self.store.service_of(entry))

    async def health_service(self, req: _Req) -> web.StreamResponse:
        name = req.rest
        meta = self.node_meta_filter(req)
        tags = req.query.getall("tag", [])
        passing_raw = req.query.getone("passing", None)

        def check_args() -> None:
            if not name:
                raise HTTPError(400, "Missing service name")
            if passing_raw not in (None, ""):
                try:
                    parse_bool(passing_raw)
                except ValueError:
                    raise HTTPError(400, "Invalid value for ?passing") from None

        def result(ident: Identity, opts: _QueryOpts) -> tuple[Any, bool]:
            only_passing = passing_raw is not None and (
                passing_raw == "" or parse_bool(passing_raw)
            )
            entries = self._tagged_entries(name, tags)
            pairs, filtered = self._instances(ident, entries, meta)
            rows: list[tuple[Node, ServiceEntry, list[JSONObj]]] = []
            for node, entry in pairs:
                checks = [self._check_json(c) for c in self.store.instance_checks(entry)]
                if only_passing and any(c["Status"] != PASSING for c in checks):
                    continue
                rows.append((node, entry, checks))
            expr = self.compile(opts.filter)
            rows = self.apply_filter(
                expr, rows, lambda r: check_service_node_json(r[0], r[1], r[2], full=True)
            )
            return [check_service_node_json(n, e, c) for n, e, c in rows], filtered

        return await self.blocking_read(
            req, lambda: self.store.service_index(name), result, check_name=check_args
        )

    async def health_mesh(self, req: _Req) -> web.StreamResponse:
        name = req.rest

        def result(ident: Identity, opts: _QueryOpts) -> tuple[Any, bool]:
            return [], False

        return await self.blocking_read(
            req,
            lambda: self.store.service_index(name),
            result,
            check_name=self._missing(req, "Missing service name"),
        )

    def _visible_checks(
        self, ident: Identity, entries: Iterable[Any], meta: Mapping[str, str]
    ) -> tuple[list[JSONObj], bool]:
        out: list[JSONObj] = []
        filtered = False
        for entry in entries:
            node = self.store.node(entry.node)
            if not self.node_matches(node, meta):
                continue
            view = self._check_json(entry)
            allowed = self.can(ident, "node", entry.node)
            if view["ServiceName"]:
                allowed = allowed and self.can(ident, "service", view["ServiceName"])
            if not allowed:
                filtered = True
                continue
            out.append(view)
        return out, filtered

    async def health_checks(self, req: _Req) -> web.StreamResponse:
        name = req.rest
        meta = self.node_meta_filter(req)

        def result(ident: Identity, opts: _QueryOpts) -> tuple[Any, bool]:
            wanted = name.lower()
            entries = []
            for c in self.store.check_entries():
                svc = self.store.service_of(c)
                if svc is not None and svc.name.lower() == wanted:
                    entries.append(c)
            views, filtered = self._visible_checks(ident, entries, meta)
            return self.apply_filter(self.compile(opts.filter), views, lambda v: v), filtered

        return await self.blocking_read(
            req,
            lambda: self.store.service_index(name),
            result,
            check_name=self._missing(req, "Missing service name"),
        )

    async def health_node(self, req: _Req) -> web.StreamResponse:
        name = req.rest

        def result(ident: Identity, opts: _QueryOpts) -> tuple[Any, bool]:
            views, filtered = self._visible_checks(ident, self.store.check_entries(name), {})
            return self.apply_filter(self.compile(opts.filter), views, lambda v: v), filtered

        return await self.blocking_read(
            req,
            lambda: self.store.table_index("checks"),
            result,
            check_name=self._missing(req, "Missing node name"),
        )

    async def health_state(self, req: _Req) -> web.StreamResponse:
        state = req.rest
        meta = self.node_meta_filter(req)

        def result(ident: Identity, opts: _QueryOpts) -> tuple[Any, bool]:
            entries = [
                c for c in self.store.check_entries() if state == "any" or c.check.status == state
            ]
            views, filtered = self._visible_checks(ident, entries, meta)
            return self.apply_filter(self.compile(opts.filter), views, lambda v: v), filtered

        return await self.blocking_read(
            req,
            lambda: self.store.table_index("checks"),
            result,
            check_name=self._missing(req, "Missing check state"),
        )

    # --- status ---------------------------------------------------------------------------------

    async def status_leader(self, req: _Req) -> web.StreamResponse:
        self.check_dc(req.get("dc"))
        leader = "" if self.b.no_leader else f"{self.b.config.advertise_addr}:{SERVER_PORT}"
        return self.json(req, leader)

    async def status_peers(self, req: _Req) -> web.StreamResponse:
        self.check_dc(req.get("dc"))
        return self.json(req, [f"{self.b.config.advertise_addr}:{SERVER_PORT}"])


# --- /_emulator hooks ---------------------------------------------------------------------------


def _seconds(text: str) -> float:
    """A Go duration (``90s``) or a plain number of seconds."""
    try:
        return float(text)
    except ValueError:
        return parse_duration(text) / 1e9


class _Hooks:
    """Test hooks under ``/_emulator/`` (JSON in, JSON out; never under ``/v1``)."""

    def __init__(self, backend: Backend) -> None:
        self.b = backend

    @staticmethod
    async def params(request: web.Request) -> dict[str, Any]:
        """Query parameters merged with a JSON object body (body wins)."""
        out: dict[str, Any] = dict(request.query)
        raw = await request.read()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise HTTPError(400, f"invalid JSON body: {exc}") from None
            if not isinstance(body, dict):
                raise HTTPError(400, "JSON body must be an object")
            out.update({k.lower(): v for k, v in body.items()})
        return {k.lower(): v for k, v in out.items()}

    async def dispatch(self, request: web.Request, path: str) -> web.StreamResponse:
        method = request.method
        b = self.b
        rest = path[len("/_emulator/") :]
        if rest == "index" and method == "GET":
            return web.json_response({"index": b.store.index})
        if rest == "advance" and method in ("POST", "PUT"):
            p = await self.params(request)
            by = p.get("by", p.get("seconds"))
            if by is None:
                raise HTTPError(400, "missing ?by=<duration>")
            try:
                seconds = float(by) if isinstance(by, (int, float)) else _seconds(str(by))
            except (ValueError, GoDurationError) as exc:
                raise HTTPError(400, f"bad duration: {exc}") from None
            if seconds < 0:
                raise HTTPError(400, "cannot advance by a negative duration")
            b.advance(seconds)
            return web.json_response({"index": b.store.index, "advanced": seconds})
        if rest == "sync" and method in ("POST", "PUT"):
            b.store.sync()
            return web.json_response({"index": b.store.index})
        if rest == "reset" and method in ("POST", "PUT"):
            b.store.reset()
            b.faults.clear()
            b.requests.clear()
            b.no_leader = False
            b.notify()
            return web.json_response({"index": b.store.index})
        if rest.startswith("check/") and rest.endswith("/status") and method in ("POST", "PUT"):
            cid = rest[len("check/") : -len("/status")]
            p = await self.params(request)
            status = str(p.get("status", ""))
            if status not in VALID_STATUSES:
                raise HTTPError(400, f"status must be passing, warning or critical, not {status!r}")
            output = p.get("output")
            if not b.store.force_check_status(cid, status, None if output is None else str(output)):
                raise HTTPError(404, f"unknown check {cid!r}")
            return web.json_response({"index": b.store.index})
        if rest == "fault":
            return await self.fault(request, method)
        if rest in ("no-leader", "leader") and method in ("POST", "PUT"):
            p = await self.params(request)
            raw = p.get("enable", p.get("enabled", True))
            enable = raw if isinstance(raw, bool) else (raw == "" or parse_bool(str(raw)))
            b.no_leader = enable if rest == "no-leader" else not enable
            b.notify()
            return web.json_response({"no_leader": b.no_leader})
        if rest == "requests":
            if method == "GET":
                since = int(request.query.get("since", "0") or 0)
                prefix = request.query.get("path", "")
                records = b.requests.entries(since)
                return web.json_response(
                    [r.to_json() for r in records if r.path.startswith(prefix)]
                )
            if method == "DELETE":
                b.requests.clear()
                return web.json_response({})
        if rest == "listener/restart" and method in ("POST", "PUT"):
            p = await self.params(request)
            down = _seconds(str(p.get("down", p.get("for", "0"))))
            if b.restart_listener is None:
                raise HTTPError(501, "listener control not available")
            b.spawn(b.restart_listener(down))
            return web.json_response({"down": down})
        return web.json_response({"error": f"no emulator hook {method} {path}"}, status=404)

    async def fault(self, request: web.Request, method: str) -> web.StreamResponse:
        b = self.b
        if method == "GET":
            return web.json_response([f.to_json() for f in b.faults.active(b.clock.now())])
        if method == "DELETE":
            b.faults.clear()
            return web.json_response({})
        if method not in ("POST", "PUT"):
            raise HTTPError(405, f"method {method} not allowed")
        p = await self.params(request)
        try:
            status_raw = p.get("status", 500)
            status = None if status_raw in (None, "", 0, "0", "none") else int(status_raw)
            count = int(p["count"]) if p.get("count") not in (None, "") else None
            duration = p.get("duration")
            until = None
            if duration not in (None, ""):
                until = b.clock.now() + _seconds(str(duration))
            delay = _seconds(str(p["delay"])) if p.get("delay") not in (None, "") else 0.0
        except (ValueError, GoDurationError) as exc:
            raise HTTPError(400, f"bad fault parameters: {exc}") from None
        fault = b.faults.add(
            path=str(p.get("path", "/v1/")),
            method=str(p["method"]) if p.get("method") else None,
            status=status,
            body=str(p.get("body", "injected fault")),
            count=count,
            until=until,
            delay=delay,
        )
        return web.json_response(fault.to_json())


# --- the application ----------------------------------------------------------------------------


def build_app(backend: Backend) -> web.Application:
    """An aiohttp application serving ``backend`` (one per listener start)."""
    api = _Api(backend)
    hooks = _Hooks(backend)

    async def handle(request: web.Request) -> web.StreamResponse:
        raw_path = request.raw_path.split("?", 1)[0]
        path = unquote(raw_path)
        if path.startswith("/_emulator/"):
            try:
                return await hooks.dispatch(request, path)
            except HTTPError as exc:
                return web.json_response({"error": exc.text}, status=exc.status)
        if not path.startswith("/v1/"):
            if "/v1/" in path:
                return _plain(404, "Invalid URL path: not a recognized HTTP API endpoint")
            return _plain(404, "404 page not found\n")
        return await _serve_v1(api, request, path)

    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def _serve_v1(api: _Api, request: web.Request, path: str) -> web.StreamResponse:
    b = api.b
    token = _parse_token(request)
    query = {k: request.query.getall(k) for k in request.query if k != "token"}
    peer = request.transport.get_extra_info("peername") if request.transport else None
    record = b.requests.add(
        method=request.method,
        path=path,
        query=query,
        token=bool(token),
        client=f"{peer[0]}:{peer[1]}" if peer else "",
        user_agent=request.headers.get("User-Agent", ""),
    )
    headers = {"X-Consul-Default-ACL-Policy": b.acl.default_policy}
    try:
        response = await _answer(api, request, path, token)
    except HTTPError as exc:
        response = _plain(exc.status, exc.text, exc.headers)
    except Exception as exc:
        log.exception("emulator handler failed")
        response = _plain(500, f"{type(exc).__name__}: {exc}")
    response.headers.update(headers)
    record.status = response.status
    return response


async def _answer(api: _Api, request: web.Request, path: str, token: str) -> web.StreamResponse:
    b = api.b
    fault = b.faults.take(request.method, path, b.clock.now())
    if fault is not None:
        if fault.delay > 0:
            with contextlib.suppress(TimeoutError):
                deadline = b.clock.now() + fault.delay
                await b.wait_until(deadline, lambda: False)
        if fault.status is not None:
            raise HTTPError(fault.status, fault.body)
    found = api.match(path)
    if found is None:
        raise HTTPError(404, "Invalid URL path: not a recognized HTTP API endpoint")
    route, rest = found
    if request.method == "OPTIONS":
        return web.Response(status=200, headers={"Allow": route.allow})
    if request.method not in route.methods:
        raise HTTPError(405, f"method {request.method} not allowed", headers={"Allow": route.allow})
    return await route.handler(_Req(request, path, rest, token))
