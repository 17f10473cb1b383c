"""Consul, through py-consul's asyncio client: the only module that imports `consul`.

Registrations go to the local agent (`/v1/agent/service/register`); the cluster-wide snapshot for
DNS and the proxy comes from stale blocking queries: one on `/v1/catalog/services` for the names,
and one per service name on `/v1/health/service/<name>`, so an unchanged catalog costs nothing and
a change costs one answer for the service that changed (never one request per DNS query)."""

from __future__ import annotations

import asyncio
import fnmatch
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import consul.aio
import consul.exceptions as consul_errors
from consul.callback import CB

from registrator.broadcast import Latest
from registrator.errors import BackendRejected, BackendUnavailable, ConfigError
from registrator.logs import get_logger
from registrator.model import CatalogInstance, CatalogSnapshot, Health, ServiceInstance
from registrator.settings import RegistryURI

T = TypeVar("T")
# 4m + Consul's jitter (up to wait/16) = 255 s, under aiohttp's default 300 s total timeout: with
# Consul's own 5m default every idle query would time out on the client side (found by
# bench/fleet.py).
_WAIT = "4m"
_SETTLE_S = 0.25  # after an answer, wait before asking again: a deploy wave becomes one answer
_MAX_CONNECTIONS = 4096  # one per watched service name is held open by its blocking query


@dataclass(frozen=True, slots=True)
class ConsulConfig:
    host: str
    port: int
    scheme: str  # http | https
    unix_path: str | None = None
    token: str | None = None
    ca_file: str | None = None
    client_cert: tuple[str, str] | None = None
    retry_attempts: int = 0
    retry_interval_s: float = 2.0
    watch_services: tuple[str, ...] = ()  # globs; empty: every name

    @classmethod
    def from_uri(
        cls,
        uri: RegistryURI,
        environ: Mapping[str, str],
        *,
        token_file: str | None = None,
        retry_attempts: int = 0,
        retry_interval_ms: int = 2000,
        watch_services: tuple[str, ...] = (),
    ) -> ConsulConfig:
        """Resolve the URI against CONSUL_* env vars, as Consul's own tools do."""
        host, port = uri.host, uri.port
        if not host and uri.scheme != "consul-unix":
            addr = environ.get("CONSUL_HTTP_ADDR", "127.0.0.1:8500").split("://")[-1]
            host, _, port_text = addr.rpartition(":") if ":" in addr else (addr, "", "")
            port = port or (int(port_text) if port_text.isdigit() else None)
        scheme = "https" if uri.scheme == "consul-tls" else "http"
        cert, key = environ.get("CONSUL_CLIENT_CERT"), environ.get("CONSUL_CLIENT_KEY")
        if bool(cert) != bool(key):
            raise ConfigError(["CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY must be set together"])
        return cls(
            host=(host or "127.0.0.1").strip("[]"),
            port=port or (8501 if scheme == "https" else 8500),
            scheme=scheme,
            unix_path=uri.path or None,
            token=read_token(environ, token_file),
            ca_file=environ.get("CONSUL_CACERT") or None,
            client_cert=(cert, key) if cert and key else None,
            retry_attempts=retry_attempts,
            retry_interval_s=retry_interval_ms / 1000,
            watch_services=watch_services,
        )


def read_token(environ: Mapping[str, str], token_file: str | None) -> str | None:
    """--token-file, else CONSUL_HTTP_TOKEN_FILE, else CONSUL_HTTP_TOKEN. A file is preferred:
    an env var shows in `docker inspect` and /proc."""
    path = token_file or environ.get("CONSUL_HTTP_TOKEN_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise ConfigError(
                [f"cannot read the Consul token file {path}: {exc.strerror}"]
            ) from exc
        if not token:
            raise ConfigError([f"the Consul token file {path} is empty"])
        return token
    return environ.get("CONSUL_HTTP_TOKEN") or None


class ConsulBackend:
    def __init__(self, config: ConsulConfig) -> None:
        self._config = config
        self._client: consul.aio.Consul | None = None
        self._sent: dict[str, ServiceInstance] = {}  # what we registered: the agent hides checks
        self._log = get_logger(backend="consul")

    @property
    def client(self) -> consul.aio.Consul:
        if self._client is None:
            raise RuntimeError("ConsulBackend.start() was not called")
        return self._client

    async def _connect(self) -> consul.aio.Consul:
        cfg = self._config
        verify: bool | str = cfg.ca_file or True
        client = consul.aio.Consul(
            host=cfg.host,
            port=cfg.port,
            scheme=cfg.scheme,
            verify=verify if cfg.scheme == "https" else False,
            cert=cfg.client_cert,
            connections_limit=_MAX_CONNECTIONS,
        )
        # py-consul lets CONSUL_HTTP_TOKEN override an explicit token; ours has its precedence.
        client.token = cfg.token
        if cfg.unix_path:
            http = client.http
            old_session = http._session
            http._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=cfg.unix_path, limit=_MAX_CONNECTIONS)
            )
            http.base_uri = "http://localhost"
            await old_session.close()
        return client

    async def start(self) -> None:
        """Wait for the agent to answer: -retry-attempts times (-1: forever)."""
        if self._client is None:
            self._client = await self._connect()
        attempt = 0
        while True:
            try:
                leader = await self._call(self.client.status.leader())
                self._log.info("consul_connected", leader=leader, address=self._where())
                return
            except BackendUnavailable as exc:
                attempt += 1
                if 0 <= self._config.retry_attempts < attempt:
                    raise BackendUnavailable(f"Consul at {self._where()}: {exc}") from exc
                self._log.warning(
                    "consul_unavailable",
                    error=str(exc),
                    attempt=attempt,
                    retry_in_s=self._config.retry_interval_s,
                )
                await asyncio.sleep(self._config.retry_interval_s)

    def _where(self) -> str:
        cfg = self._config
        return cfg.unix_path or f"{cfg.scheme}://{cfg.host}:{cfg.port}"

    def set_node(self, name: str, address: str) -> None:
        return None  # the agent knows its own node; IDs carry ours

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def register(self, instance: ServiceInstance) -> None:
        checks = [c.to_consul() for c in instance.checks]
        await self._call(
            self.client.agent.service.register(
                instance.name,
                service_id=instance.id,
                address=instance.address,
                port=instance.port,
                tags=list(instance.tags),
                meta=dict(instance.meta),
                check=checks[0] if checks else None,
                extra_checks=checks[1:],
                replace_existing_checks=True,
            )
        )
        self._sent[instance.id] = instance

    async def deregister(self, service_id: str) -> None:
        await self._call(self.client.agent.service.deregister(service_id))
        self._sent.pop(service_id, None)

    async def services(self) -> Mapping[str, ServiceInstance]:
        raw = await self._call(self.client.agent.services())
        out: dict[str, ServiceInstance] = {}
        for sid, svc in (raw or {}).items():
            seen = _instance_from_agent(svc)
            sent = self._sent.get(sid)
            # The agent does not show checks: trust what we sent when everything else matches.
            out[sid] = sent if sent is not None and _visible(sent) == _visible(seen) else seen
        return out

    async def pass_ttl(self, check_id: str) -> bool:
        return bool(await self._call(self.client.agent.check.ttl_pass(check_id)))

    async def node_address(self) -> str | None:
        me = await self._call(self.client.agent.self())
        return str((me.get("Member") or {}).get("Addr") or "") or None

    async def watch_catalog(self, snapshots: Latest[CatalogSnapshot]) -> None:
        await _CatalogWatcher(self, snapshots).run()

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except consul_errors.ACLPermissionDenied as exc:
            raise BackendRejected(403, str(exc)) from exc
        except consul_errors.BadRequest as exc:
            raise BackendRejected(400, _strip_status(str(exc))) from exc
        except (consul_errors.ClientError, consul_errors.NotFound) as exc:
            raise BackendRejected(_status_of(str(exc), 404), _strip_status(str(exc))) from exc
        except (consul_errors.ConsulException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise BackendUnavailable(str(exc) or type(exc).__name__) from exc


def _status_of(text: str, default: int) -> int:
    head = text.split(" ", 1)[0]
    return int(head) if head.isdigit() else default


def _strip_status(text: str) -> str:
    head, _, rest = text.partition(" ")
    return rest if head.isdigit() else text


def _visible(s: ServiceInstance) -> tuple[Any, ...]:
    return (s.id, s.name, s.address, s.port, tuple(sorted(s.tags)), s.meta)


def _instance_from_agent(svc: Mapping[str, Any]) -> ServiceInstance:
    tags = tuple(svc.get("Tags") or ())
    return ServiceInstance(
        id=str(svc.get("ID", "")),
        name=str(svc.get("Service", "")),
        address=str(svc.get("Address") or ""),
        port=int(svc.get("Port") or 0),
        protocol="udp" if "udp" in tags else "tcp",
        tags=tags,
        meta=tuple(sorted((svc.get("Meta") or {}).items())),
    )


def watched(name: str, globs: tuple[str, ...]) -> bool:
    """Whether the snapshot holds service `name` (`--watch-services`; Consul's service names, like
    its DNS, are case-insensitive)."""
    return not globs or any(fnmatch.fnmatchcase(name.lower(), g.lower()) for g in globs)


def aggregate_status(checks: list[Mapping[str, Any]]) -> Health:
    """Consul's AggregatedStatus, with maintenance counted as critical."""
    statuses = {str(c.get("Status", "")) for c in checks}
    if "critical" in statuses or "maintenance" in statuses:
        return "critical"
    if "warning" in statuses:
        return "warning"
    return "passing"


class _CatalogWatcher:
    """Cluster-wide snapshot from blocking queries; see the module docstring."""

    def __init__(self, backend: ConsulBackend, snapshots: Latest[CatalogSnapshot]) -> None:
        self._backend = backend
        self._snapshots = snapshots
        self._globs = backend._config.watch_services
        self._by_name: dict[str, tuple[CatalogInstance, ...]] = {}
        self._nodes: dict[str, str] = {}
        self._changed = asyncio.Event()
        self._log = get_logger(backend="consul")

    async def run(self) -> None:
        watchers: dict[str, asyncio.Task[None]] = {}
        publisher = asyncio.create_task(self._publish_forever())
        try:
            index: str | None = None
            while True:
                index, names = await self._blocking(
                    lambda i: self._backend.client.catalog.services(
                        index=i, wait=_WAIT, consistency="stale"
                    ),
                    index,
                )
                wanted = {n for n in names if watched(n, self._globs)}
                for name in set(watchers) - wanted:
                    watchers.pop(name).cancel()
                    self._by_name.pop(name, None)
                    self._changed.set()
                for name in wanted - set(watchers):
                    watchers[name] = asyncio.create_task(self._watch_service(name))
        finally:
            for task in (*watchers.values(), publisher):
                task.cancel()
            await asyncio.gather(*watchers.values(), publisher, return_exceptions=True)

    async def _watch_service(self, name: str) -> None:
        index: str | None = None
        while True:
            index, entries = await self._blocking(lambda i: self._health_service(name, i), index)
            instances = []
            for entry in entries or ():
                node = entry.get("Node") or {}
                svc = entry.get("Service") or {}
                inst = _instance_from_agent(svc)
                node_name, node_addr = str(node.get("Node", "")), str(node.get("Address", ""))
                self._nodes[node_name] = node_addr
                weights = svc.get("Weights") or {}
                instances.append(
                    CatalogInstance(
                        node=node_name,
                        node_address=node_addr,
                        service=inst if inst.address else _with_address(inst, node_addr),
                        status=aggregate_status(entry.get("Checks") or []),
                        weights=(int(weights.get("Passing", 1)), int(weights.get("Warning", 1))),
                    )
                )
            self._by_name[name] = tuple(instances)
            self._changed.set()

    def _health_service(self, name: str, index: str | None) -> Awaitable[tuple[str, Any]]:
        """`/v1/health/service/<name>` with `?stale`, which py-consul's helper cannot ask for:
        any server answers (reads spread over the servers, and keep working without a leader)."""
        client = self._backend.client
        params = [("stale", "1")]
        if index:
            params += [("index", index), ("wait", _WAIT)]
        result: Awaitable[tuple[str, Any]] = client.http.get(
            CB.json(index=True),
            f"/v1/health/service/{quote(name, safe='')}",
            params=params,
            headers=client.prepare_headers(None),
        )
        return result

    async def _blocking(
        self, query: Callable[[str | None], Awaitable[tuple[str, Any]]], index: str | None
    ) -> tuple[str, Any]:
        """One blocking query, retried with capped backoff while Consul is unavailable."""
        if index is not None:
            await asyncio.sleep(_SETTLE_S)  # the answer was published; let the next changes pile up
        delay = 0.5
        while True:
            try:
                new_index, data = await self._backend._call(query(index))
            except (BackendUnavailable, BackendRejected) as exc:
                self._log.warning("consul_watch_failed", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
                delay = min(delay * 2, 30.0)
                continue
            # An index that goes backwards (a server restore) means: start over from 0.
            if index is not None and int(new_index or 0) < int(index):
                new_index = "0"
            return str(new_index), data

    async def _publish_forever(self) -> None:
        version = self._snapshots.get().version
        while True:
            await self._changed.wait()
            await asyncio.sleep(0.02)  # let a burst of answers land in one snapshot
            self._changed.clear()
            version += 1
            instances = tuple(
                sorted(
                    (i for group in self._by_name.values() for i in group),
                    key=lambda i: (i.service.name, i.node, i.service.id),
                )
            )
            await self._snapshots.publish(
                CatalogSnapshot(instances, tuple(sorted(self._nodes.items())), version)
            )


def _with_address(inst: ServiceInstance, address: str) -> ServiceInstance:
    return replace(inst, address=address)
