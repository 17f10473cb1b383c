"""The emulator's state: one node's agent-local state plus the catalog, driven by a clock.

Two layers, as in Consul (spec section 11):

* **agent-local state** (``local_services`` / ``local_checks``): what the agent endpoints read
  and write; TTL timers, critical-since times and DeregisterCriticalServiceAfter live here.
* **catalog** (nodes, service instances, checks, each with Create/ModifyIndex): what the catalog
  and health endpoints read. Every agent write is pushed to the catalog before it returns (the
  touched entries only); :meth:`Store.sync` is the full anti-entropy pass that also reverts
  catalog-side edits of agent-owned services (except tags under ``EnableTagOverride``).

Indexes (spec section 3): one raft index, bumped once per state-changing transaction; per-table
indexes (``nodes``, ``services``, ``checks``) and per-service-name indexes that survive the last
instance's deletion (tombstones). Writes that change nothing do not bump anything.

Time-driven events (TTL expiry, the reaper every ``check_reap_interval``) run in time order up to
``clock.now()`` in :meth:`Store.run_due`; the caller decides when (a background task in real time,
or immediately after a virtual ``advance``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Final

from .clock import Clock

__all__ = [
    "CRITICAL",
    "NODE_MAINT_CHECK_ID",
    "PASSING",
    "SERF_CHECK_ID",
    "SERVICE_MAINT_PREFIX",
    "VALID_STATUSES",
    "WARNING",
    "CatalogError",
    "Check",
    "CheckEntry",
    "CheckSpec",
    "LocalCheck",
    "Node",
    "NotTTLError",
    "Service",
    "ServiceAddress",
    "ServiceEntry",
    "Store",
    "aggregated_status",
]

PASSING: Final = "passing"
WARNING: Final = "warning"
CRITICAL: Final = "critical"
MAINTENANCE: Final = "maintenance"
VALID_STATUSES: Final = frozenset({PASSING, WARNING, CRITICAL})

SERF_CHECK_ID: Final = "serfHealth"
NODE_MAINT_CHECK_ID: Final = "_node_maintenance"
SERVICE_MAINT_PREFIX: Final = "_service_maintenance:"
DEFAULT_SERVICE_MAINT_REASON: Final = (
    "Maintenance mode is enabled for this service, but no reason was provided. "
    "This is a default message."
)
DEFAULT_NODE_MAINT_REASON: Final = (
    "Maintenance mode is enabled for this node, but no reason was provided. "
    "This is a default message."
)
CONSUL_SERVICE_ID: Final = "consul"


@dataclass(frozen=True)
class ServiceAddress:
    """One entry of a service's ``TaggedAddresses``."""

    address: str
    port: int


@dataclass(frozen=True)
class Service:
    """A service instance definition (``structs.NodeService``)."""

    id: str
    name: str
    kind: str = ""
    tags: tuple[str, ...] = ()
    address: str = ""
    tagged_addresses: Mapping[str, ServiceAddress] = field(default_factory=dict)
    meta: Mapping[str, str] = field(default_factory=dict)
    port: int = 0
    socket_path: str = ""
    weights: tuple[int, int] = (1, 1)
    enable_tag_override: bool = False
    proxy: Any = None
    connect: Any = None
    locality: Any = None
    peer_name: str = ""


@dataclass(frozen=True)
class Check:
    """A health check as stored (``structs.HealthCheck`` minus node and raft indexes)."""

    check_id: str
    name: str
    status: str = CRITICAL
    notes: str = ""
    output: str = ""
    service_id: str = ""
    type: str = ""
    interval: str = ""
    timeout: str = ""
    definition: Mapping[str, Any] = field(default_factory=dict)
    exposed_port: int = 0


@dataclass(frozen=True)
class CheckSpec:
    """A validated check definition from a registration request."""

    check_id: str
    name: str
    status: str = CRITICAL
    notes: str = ""
    type: str = ""
    interval: str = ""
    timeout: str = ""
    definition: Mapping[str, Any] = field(default_factory=dict)
    ttl: float | None = None
    deregister_after: float | None = None
    output_max_size: int = 4096
    service_id: str = ""


@dataclass
class Node:
    """A catalog node (``structs.Node``)."""

    name: str
    id: str
    address: str
    datacenter: str
    tagged_addresses: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    create_index: int = 0
    modify_index: int = 0

    def same_as(self, other: Node) -> bool:
        return (
            self.name == other.name
            and self.id == other.id
            and self.address == other.address
            and self.datacenter == other.datacenter
            and self.tagged_addresses == other.tagged_addresses
            and self.meta == other.meta
        )


@dataclass
class ServiceEntry:
    """A catalog service instance on a node."""

    node: str
    service: Service
    create_index: int
    modify_index: int


@dataclass
class CheckEntry:
    """A catalog check on a node."""

    node: str
    check: Check
    create_index: int
    modify_index: int


@dataclass
class LocalCheck:
    """Agent-local check state: the check plus its timers."""

    check: Check
    ttl: float | None = None
    deadline: float | None = None
    last_output: str = ""
    critical_since: float | None = None
    reap_after: float | None = None
    output_max_size: int = 4096


class NotTTLError(LookupError):
    """The check exists but is not a TTL check."""


class CatalogError(ValueError):
    """A catalog write was rejected; ``str(err)`` is Consul's message (HTTP 500)."""


def aggregated_status(checks: list[Check]) -> str:
    """``api.HealthChecks.AggregatedStatus``: maintenance > critical > warning > passing."""
    warning = critical = maintenance = False
    for chk in checks:
        if chk.check_id == NODE_MAINT_CHECK_ID or chk.check_id.startswith(SERVICE_MAINT_PREFIX):
            maintenance = True
            continue
        if chk.status == PASSING:
            continue
        if chk.status == WARNING:
            warning = True
        elif chk.status == CRITICAL:
            critical = True
        else:
            return ""
    if maintenance:
        return MAINTENANCE
    if critical:
        return CRITICAL
    if warning:
        return WARNING
    return PASSING


def truncate_output(output: str, limit: int) -> str:
    """Cut ``output`` to ``limit`` bytes the way ``CheckTTL.SetStatus`` does."""
    raw = output.encode("utf-8")
    if limit <= 0 or len(raw) <= limit:
        return output
    head = raw[:limit].decode("utf-8", errors="replace")
    return f"{head} ... (captured {limit} of {len(raw)} bytes)"


def initial_index() -> int:
    """A starting raft index above anything an earlier run can have handed out."""
    return time.time_ns() // 1000


class _Txn:
    """Collects what one write touched; allocates the next raft index on first change."""

    def __init__(self, current: int) -> None:
        self._current = current
        self.idx: int | None = None
        self.tables: set[str] = set()
        self.service_names: set[str] = set()

    def index(self) -> int:
        if self.idx is None:
            self.idx = self._current + 1
        return self.idx


class Store:
    """All emulator state for one agent (which is also the only server)."""

    def __init__(
        self,
        *,
        clock: Clock,
        node_name: str = "node1",
        node_id: str | None = None,
        datacenter: str = "dc1",
        address: str = "127.0.0.1",
        version: str = "1.21.0",
        include_consul_service: bool = True,
        check_reap_interval: float = 30.0,
        dcsa_min: float = 60.0,
        start_index: int | None = None,
    ) -> None:
        self.clock = clock
        self.node_name = node_name
        self.node_id = node_id or str(uuid.uuid4())
        self.datacenter = datacenter
        self.address = address
        self.version = version
        self.include_consul_service = include_consul_service
        self.check_reap_interval = check_reap_interval
        self.dcsa_min = dcsa_min
        self._index = start_index if start_index is not None else initial_index()
        self._table_index: dict[str, int] = dict.fromkeys(("nodes", "services", "checks"), 0)
        self._service_index: dict[str, int] = {}
        self._nodes: dict[str, Node] = {}
        self._services: dict[tuple[str, str], ServiceEntry] = {}
        self._checks: dict[tuple[str, str], CheckEntry] = {}
        self.local_services: dict[str, Service] = {}
        self.local_checks: dict[str, LocalCheck] = {}
        self._listeners: list[Callable[[], None]] = []
        self._reap_anchor = clock.now()
        self._reap_at = self._reap_anchor + check_reap_interval
        self._bootstrap()

    # --- listeners and indexes ------------------------------------------------------------------

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every write (data or timer change)."""
        self._listeners.append(callback)

    def _notify(self) -> None:
        for callback in list(self._listeners):
            callback()

    @property
    def index(self) -> int:
        """The raft index of the last state-changing write."""
        return self._index

    def table_index(self, *tables: str) -> int:
        return max(self._table_index[t] for t in tables)

    def service_index(self, name: str) -> int:
        """Index for one service name's queries (falls back to nodes/services tables)."""
        idx = self._service_index.get(name.lower())
        if idx is None:
            return self.table_index("nodes", "services")
        return idx

    @contextmanager
    def _txn(self) -> Iterator[_Txn]:
        tx = _Txn(self._index)
        try:
            yield tx
        finally:
            if tx.idx is not None:
                self._index = tx.idx
                for table in tx.tables:
                    self._table_index[table] = tx.idx
                for name in tx.service_names:
                    self._service_index[name] = tx.idx
            self._notify()

    # --- catalog primitives -----------------------------------------------------------------------

    @property
    def local_node_key(self) -> str:
        return self.node_name.lower()

    def local_node_template(self) -> Node:
        addr = self.address
        return Node(
            name=self.node_name,
            id=self.node_id,
            address=addr,
            datacenter=self.datacenter,
            tagged_addresses={"lan": addr, "lan_ipv4": addr, "wan": addr, "wan_ipv4": addr},
            meta={"consul-network-segment": "", "consul-version": self.version},
        )

    def _names_on_node(self, node_key: str) -> set[str]:
        return {e.service.name.lower() for (nk, _), e in self._services.items() if nk == node_key}

    def _put_node(self, tx: _Txn, node: Node) -> None:
        key = node.name.lower()
        existing = self._nodes.get(key)
        if existing is not None and existing.same_as(node):
            return
        idx = tx.index()
        node.create_index = existing.create_index if existing else idx
        node.modify_index = idx
        self._nodes[key] = node
        tx.tables.add("nodes")
        tx.service_names |= self._names_on_node(key)

    def _put_service(self, tx: _Txn, node_key: str, svc: Service) -> None:
        key = (node_key, svc.id)
        existing = self._services.get(key)
        if existing is not None and existing.service == svc:
            return
        idx = tx.index()
        node = self._nodes[node_key]
        self._services[key] = ServiceEntry(
            node=node.name,
            service=svc,
            create_index=existing.create_index if existing else idx,
            modify_index=idx,
        )
        tx.tables.add("services")
        tx.service_names.add(svc.name.lower())
        if existing is not None:
            tx.service_names.add(existing.service.name.lower())

    def _del_service(self, tx: _Txn, node_key: str, service_id: str) -> None:
        entry = self._services.pop((node_key, service_id), None)
        if entry is None:
            return
        tx.index()
        tx.tables.add("services")
        tx.service_names.add(entry.service.name.lower())
        for key in [k for k, c in self._checks.items() if k[0] == node_key]:
            if self._checks[key].check.service_id == service_id:
                del self._checks[key]
                tx.tables.add("checks")

    def _check_scope(self, node_key: str, check: Check) -> set[str]:
        if check.service_id:
            entry = self._services.get((node_key, check.service_id))
            return {entry.service.name.lower()} if entry else set()
        return self._names_on_node(node_key)

    def _put_check(self, tx: _Txn, node_key: str, check: Check) -> None:
        key = (node_key, check.check_id)
        existing = self._checks.get(key)
        if existing is not None and existing.check == check:
            return
        idx = tx.index()
        self._checks[key] = CheckEntry(
            node=self._nodes[node_key].name,
            check=check,
            create_index=existing.create_index if existing else idx,
            modify_index=idx,
        )
        tx.tables.add("checks")
        tx.service_names |= self._check_scope(node_key, check)
        if existing is not None:
            tx.service_names |= self._check_scope(node_key, existing.check)

    def _del_check(self, tx: _Txn, node_key: str, check_id: str) -> None:
        entry = self._checks.get((node_key, check_id))
        if entry is None:
            return
        tx.index()
        tx.service_names |= self._check_scope(node_key, entry.check)
        del self._checks[(node_key, check_id)]
        tx.tables.add("checks")

    def _del_node(self, tx: _Txn, node_key: str) -> None:
        if node_key not in self._nodes:
            return
        tx.index()
        tx.service_names |= self._names_on_node(node_key)
        for key in [k for k in self._services if k[0] == node_key]:
            del self._services[key]
            tx.tables.add("services")
        for key in [k for k in self._checks if k[0] == node_key]:
            del self._checks[key]
            tx.tables.add("checks")
        del self._nodes[node_key]
        tx.tables.add("nodes")

    def _serf_check(self) -> Check:
        return Check(
            check_id=SERF_CHECK_ID,
            name="Serf Health Status",
            status=PASSING,
            output="Agent alive and reachable",
        )

    def _consul_service(self) -> Service:
        return Service(id=CONSUL_SERVICE_ID, name="consul", port=8300)

    def _ensure_server_entries(self, tx: _Txn) -> None:
        """The local node, its serfHealth check and the ``consul`` service (what a leader keeps)."""
        key = self.local_node_key
        template = self.local_node_template()
        existing = self._nodes.get(key)
        if existing is None or not existing.same_as(template):
            self._put_node(tx, template)
        if (key, SERF_CHECK_ID) not in self._checks:
            self._put_check(tx, key, self._serf_check())
        if self.include_consul_service:
            self._put_service(tx, key, self._consul_service())

    def _bootstrap(self) -> None:
        with self._txn() as tx:
            self._ensure_server_entries(tx)

    # --- pushing agent state to the catalog -------------------------------------------------------

    def _push(
        self, tx: _Txn, service_ids: Collection[str] = (), check_ids: Collection[str] = ()
    ) -> None:
        key = self.local_node_key
        if (service_ids or check_ids) and key not in self._nodes:
            self._put_node(tx, self.local_node_template())
        for sid in sorted(service_ids):
            svc = self.local_services.get(sid)
            if svc is None:
                self._del_service(tx, key, sid)
            else:
                self._put_service(tx, key, svc)
        for cid in sorted(check_ids):
            local = self.local_checks.get(cid)
            if local is None:
                self._del_check(tx, key, cid)
            else:
                self._put_check(tx, key, local.check)

    def sync(self) -> None:
        """Full anti-entropy pass: make the catalog's view of this node match the agent."""
        key = self.local_node_key
        with self._txn() as tx:
            self._ensure_server_entries(tx)
            for nk, sid in list(self._services):
                if nk != key or sid in self.local_services:
                    continue
                if self.include_consul_service and sid == CONSUL_SERVICE_ID:
                    continue
                self._del_service(tx, key, sid)
            for sid, svc in list(self.local_services.items()):
                remote = self._services.get((key, sid))
                if (
                    remote is not None
                    and svc.enable_tag_override
                    and remote.service.tags != svc.tags
                ):
                    # EnableTagOverride: the agent adopts the catalog's tags.
                    svc = replace(svc, tags=remote.service.tags)
                    self.local_services[sid] = svc
                self._put_service(tx, key, svc)
            for nk, cid in list(self._checks):
                if nk == key and cid != SERF_CHECK_ID and cid not in self.local_checks:
                    self._del_check(tx, key, cid)
            for local in self.local_checks.values():
                self._put_check(tx, key, local.check)

    # --- agent writes -----------------------------------------------------------------------------

    def _new_local_check(self, spec: CheckSpec, status: str, output: str) -> LocalCheck:
        now = self.clock.now()
        check = Check(
            check_id=spec.check_id,
            name=spec.name,
            status=status,
            notes=spec.notes,
            output=output,
            service_id=spec.service_id,
            type=spec.type,
            interval=spec.interval,
            timeout=spec.timeout,
            definition=spec.definition,
        )
        reap_after = None
        if spec.deregister_after is not None and spec.deregister_after > 0:
            reap_after = max(spec.deregister_after, self.dcsa_min)
        ttl = spec.ttl if spec.ttl is not None and spec.ttl > 0 else None
        # A TTL check's critical clock starts when the timer first reports (expiry or an update);
        # other checks are not probed, so count them as failing from registration.
        critical_since = now if status == CRITICAL and ttl is None else None
        return LocalCheck(
            check=check,
            ttl=ttl,
            deadline=now + ttl if ttl is not None else None,
            critical_since=critical_since,
            reap_after=reap_after,
            output_max_size=spec.output_max_size,
        )

    def register_service(
        self, service: Service, checks: list[CheckSpec], *, replace_existing_checks: bool = False
    ) -> None:
        """``addServiceInternal``: (re)define an instance; existing check IDs keep their state."""
        previous = {
            cid: (lc.check.status, lc.check.output) for cid, lc in self.local_checks.items()
        }
        attached = {
            cid for cid, lc in self.local_checks.items() if lc.check.service_id == service.id
        }
        self.local_services[service.id] = service
        touched: set[str] = set()
        for spec in checks:
            spec = replace(spec, service_id=service.id)
            status, output = previous.get(spec.check_id, (spec.status, ""))
            self.local_checks[spec.check_id] = self._new_local_check(spec, status, output)
            touched.add(spec.check_id)
        if replace_existing_checks:
            for cid in attached - touched:
                self.local_checks.pop(cid, None)
                touched.add(cid)
        with self._txn() as tx:
            self._push(tx, {service.id}, touched)

    def deregister_service(self, service_id: str) -> bool:
        """Remove an instance and its checks; ``False`` if the agent does not know the ID."""
        if service_id not in self.local_services:
            return False
        del self.local_services[service_id]
        gone = {cid for cid, lc in self.local_checks.items() if lc.check.service_id == service_id}
        for cid in gone:
            del self.local_checks[cid]
        with self._txn() as tx:
            self._push(tx, {service_id}, gone)
        return True

    def register_check(self, spec: CheckSpec) -> None:
        """``agent/check/register``: a node check, or a check attached to a local service."""
        self.local_checks[spec.check_id] = self._new_local_check(spec, spec.status, "")
        with self._txn() as tx:
            self._push(tx, (), {spec.check_id})

    def deregister_check(self, check_id: str) -> bool:
        if check_id not in self.local_checks:
            return False
        del self.local_checks[check_id]
        with self._txn() as tx:
            self._push(tx, (), {check_id})
        return True

    def _set_status(self, local: LocalCheck, status: str, output: str, at: float) -> None:
        """``State.UpdateCheck``: track critical-since, then store status and output."""
        if status == CRITICAL:
            if local.critical_since is None:
                local.critical_since = at
        else:
            local.critical_since = None
        local.check = replace(local.check, status=status, output=output)

    def update_ttl(self, check_id: str, status: str, output: str) -> None:
        """TTL pass/warn/fail/update: set status and output, restart the timer.

        Raises ``KeyError`` for an unknown ID and :class:`NotTTLError` for a non-TTL check.
        """
        local = self.local_checks[check_id]
        if local.ttl is None:
            raise NotTTLError(check_id)
        output = truncate_output(output, local.output_max_size)
        now = self.clock.now()
        local.last_output = output
        local.deadline = now + local.ttl
        self._set_status(local, status, output, now)
        with self._txn() as tx:
            self._push(tx, (), {check_id})

    def force_check_status(self, check_id: str, status: str, output: str | None = None) -> bool:
        """Test hook: set a check's status (and output) without TTL semantics."""
        local = self.local_checks.get(check_id)
        if local is not None:
            out = local.check.output if output is None else output
            self._set_status(local, status, out, self.clock.now())
            with self._txn() as tx:
                self._push(tx, (), {check_id})
            return True
        for (nk, cid), entry in self._checks.items():
            if cid == check_id and nk == self.local_node_key:
                out = entry.check.output if output is None else output
                with self._txn() as tx:
                    self._put_check(tx, nk, replace(entry.check, status=status, output=out))
                return True
        return False

    def set_service_maintenance(self, service_id: str, enable: bool, reason: str = "") -> None:
        cid = SERVICE_MAINT_PREFIX + service_id
        if enable:
            if cid in self.local_checks:
                return
            spec = CheckSpec(
                check_id=cid,
                name="Service Maintenance Mode",
                notes=reason or DEFAULT_SERVICE_MAINT_REASON,
                type="maintenance",
                service_id=service_id,
            )
            self.local_checks[cid] = self._new_local_check(spec, CRITICAL, "")
        elif self.local_checks.pop(cid, None) is None:
            return
        with self._txn() as tx:
            self._push(tx, (), {cid})

    def set_node_maintenance(self, enable: bool, reason: str = "") -> None:
        cid = NODE_MAINT_CHECK_ID
        if enable:
            if cid in self.local_checks:
                return
            spec = CheckSpec(
                check_id=cid,
                name="Node Maintenance Mode",
                notes=reason or DEFAULT_NODE_MAINT_REASON,
                type="maintenance",
            )
            self.local_checks[cid] = self._new_local_check(spec, CRITICAL, "")
        elif self.local_checks.pop(cid, None) is None:
            return
        with self._txn() as tx:
            self._push(tx, (), {cid})

    def reset(self) -> None:
        """Forget everything except the index, which keeps moving forward."""
        self.local_services.clear()
        self.local_checks.clear()
        with self._txn() as tx:
            for key in list(self._nodes):
                self._del_node(tx, key)
            self._ensure_server_entries(tx)

    # --- catalog writes ---------------------------------------------------------------------------

    def catalog_register(self, req: Mapping[str, Any]) -> None:
        """``PUT /v1/catalog/register`` (``Catalog.Register`` + ``EnsureRegistration``)."""
        node_name = str(req.get("Node", ""))
        if not node_name:
            raise CatalogError("Must provide node")
        skip_node = bool(req.get("SkipNodeUpdate", False))
        address = str(req.get("Address", ""))
        if not address and not skip_node:
            raise CatalogError("Must provide address if SkipNodeUpdate is not set")
        node_id = str(req.get("ID", ""))
        if node_id:
            try:
                uuid.UUID(node_id)
            except ValueError:
                raise CatalogError(f"Bad node ID: uuid string is wrong length: {node_id}") from None
        svc_req: Mapping[str, Any] | None = req.get("Service")
        service: Service | None = None
        if svc_req:
            service = _service_from_node_service(svc_req)
        check_reqs: list[Mapping[str, Any]] = []
        if req.get("Check"):
            check_reqs.append(req["Check"])
        check_reqs.extend(req.get("Checks") or [])
        key = node_name.lower()
        existing = self._nodes.get(key)
        if skip_node and existing is None and (service is not None or check_reqs):
            raise CatalogError("Missing node registration")
        checks: list[Check] = []
        for raw in check_reqs:
            chk_node = str(raw.get("Node", "")) or node_name
            if chk_node.lower() != key:
                raise CatalogError(f"Check node {chk_node!r} does not match registration node")
            sid = str(raw.get("ServiceID", ""))
            if sid and not (
                (service is not None and service.id == sid) or (key, sid) in self._services
            ):
                raise CatalogError("Missing service registration")
            checks.append(
                Check(
                    check_id=str(raw.get("CheckID", "")),
                    name=str(raw.get("Name", "")),
                    status=str(raw.get("Status", "")) or CRITICAL,
                    notes=str(raw.get("Notes", "")),
                    output=str(raw.get("Output", "")),
                    service_id=sid,
                    type=str(raw.get("Type", "")),
                    interval=str(raw.get("Interval", "")),
                    timeout=str(raw.get("Timeout", "")),
                    definition=dict(raw.get("Definition") or {}),
                    exposed_port=int(raw.get("ExposedPort", 0)),
                )
            )
        with self._txn() as tx:
            if not skip_node:
                node = Node(
                    name=existing.name if existing else node_name,
                    id=node_id or (existing.id if existing else ""),
                    address=address,
                    datacenter=self.datacenter,
                    tagged_addresses=dict(req.get("TaggedAddresses") or {}),
                    meta=dict(req.get("NodeMeta") or {}),
                )
                self._put_node(tx, node)
            if service is not None:
                self._put_service(tx, key, service)
            for chk in checks:
                self._put_check(tx, key, chk)

    def catalog_deregister(self, req: Mapping[str, Any]) -> None:
        """``PUT /v1/catalog/deregister``: a service, a check, or the whole node."""
        node_name = str(req.get("Node", ""))
        if not node_name:
            raise CatalogError("Must provide node")
        key = node_name.lower()
        sid = str(req.get("ServiceID", ""))
        cid = str(req.get("CheckID", ""))
        with self._txn() as tx:
            if sid:
                self._del_service(tx, key, sid)
            if cid:
                self._del_check(tx, key, cid)
            if not sid and not cid:
                self._del_node(tx, key)

    # --- time -------------------------------------------------------------------------------------

    def _reap_candidates(self) -> bool:
        return any(
            lc.reap_after is not None and lc.critical_since is not None and lc.check.service_id
            for lc in self.local_checks.values()
        )

    def next_deadline(self) -> float | None:
        """When :meth:`run_due` next has work (clock time), or ``None``."""
        deadlines = [lc.deadline for lc in self.local_checks.values() if lc.deadline is not None]
        if self._reap_candidates():
            deadlines.append(self._reap_at)
        return min(deadlines) if deadlines else None

    def run_due(self) -> None:
        """Run TTL expiries and reaper passes due up to ``clock.now()``, in time order."""
        now = self.clock.now()
        while True:
            ttl_at: float | None = None
            ttl_id = ""
            for cid, lc in self.local_checks.items():
                if lc.deadline is not None and (ttl_at is None or lc.deadline < ttl_at):
                    ttl_at, ttl_id = lc.deadline, cid
            reap_at = self._reap_at if self._reap_candidates() else None
            if ttl_at is not None and ttl_at <= now and (reap_at is None or ttl_at <= reap_at):
                self._expire_ttl(ttl_id, ttl_at)
            elif reap_at is not None and reap_at <= now:
                self._reap(reap_at)
                self._reap_at += self.check_reap_interval
            else:
                break
        if self._reap_at <= now:
            periods = int((now - self._reap_anchor) // self.check_reap_interval) + 1
            self._reap_at = self._reap_anchor + periods * self.check_reap_interval

    def _expire_ttl(self, check_id: str, at: float) -> None:
        local = self.local_checks[check_id]
        local.deadline = None
        prefix = "TTL expired"
        if local.last_output:
            output = f"{prefix} (last output before timeout follows): {local.last_output}"
        else:
            output = prefix
        self._set_status(local, CRITICAL, output, at)
        with self._txn() as tx:
            self._push(tx, (), {check_id})

    def _reap(self, at: float) -> None:
        doomed: set[str] = set()
        for lc in self.local_checks.values():
            if lc.reap_after is None or lc.critical_since is None or not lc.check.service_id:
                continue
            if at - lc.critical_since > lc.reap_after:
                doomed.add(lc.check.service_id)
        for sid in sorted(doomed):
            self.deregister_service(sid)

    # --- reads ------------------------------------------------------------------------------------

    def node(self, name: str) -> Node | None:
        return self._nodes.get(name.lower())

    def nodes(self) -> list[Node]:
        return sorted(self._nodes.values(), key=lambda n: n.name.lower())

    def service_entries(self, name: str | None = None) -> list[ServiceEntry]:
        """Catalog instances (all, or of one service name, case-insensitive), ordered."""
        wanted = name.lower() if name is not None else None
        entries = [
            e for e in self._services.values() if wanted is None or e.service.name.lower() == wanted
        ]
        return sorted(entries, key=lambda e: (e.node.lower(), e.service.id))

    def node_service_entries(self, node_name: str) -> list[ServiceEntry]:
        key = node_name.lower()
        entries = [e for (nk, _), e in self._services.items() if nk == key]
        return sorted(entries, key=lambda e: e.service.id)

    def check_entries(self, node_name: str | None = None) -> list[CheckEntry]:
        key = node_name.lower() if node_name is not None else None
        entries = [e for (nk, _), e in self._checks.items() if key is None or nk == key]
        return sorted(entries, key=lambda e: (e.node.lower(), e.check.check_id))

    def service_of(self, entry: CheckEntry) -> Service | None:
        """The catalog service a check belongs to (for ServiceName/ServiceTags)."""
        if not entry.check.service_id:
            return None
        svc = self._services.get((entry.node.lower(), entry.check.service_id))
        return svc.service if svc else None

    def instance_checks(self, entry: ServiceEntry) -> list[CheckEntry]:
        """Node-level checks of the instance's node first, then the instance's own checks."""
        on_node = self.check_entries(entry.node)
        node_level = [c for c in on_node if not c.check.service_id]
        own = [c for c in on_node if c.check.service_id == entry.service.id]
        return node_level + own

    def local_service_checks(self, service_id: str) -> list[Check]:
        return [
            lc.check
            for cid, lc in sorted(self.local_checks.items())
            if lc.check.service_id == service_id or not lc.check.service_id
        ]


def _service_from_node_service(raw: Mapping[str, Any]) -> Service:
    name = str(raw.get("Service", ""))
    sid = str(raw.get("ID", "")) or name
    if not name:
        raise CatalogError("Must provide service name with ID")
    address = str(raw.get("Address", ""))
    if address in ("0.0.0.0", "::", "[::]"):
        raise CatalogError("Invalid service address")
    weights_raw = raw.get("Weights") or {}
    weights = (int(weights_raw.get("Passing", 1)), int(weights_raw.get("Warning", 1)))
    tagged = {
        k: ServiceAddress(str(v.get("Address", "")), int(v.get("Port", 0)))
        for k, v in (raw.get("TaggedAddresses") or {}).items()
    }
    return Service(
        id=sid,
        name=name,
        kind=str(raw.get("Kind", "")),
        tags=tuple(raw.get("Tags") or ()),
        address=address,
        tagged_addresses=dict(sorted(tagged.items())),
        meta=dict(raw.get("Meta") or {}),
        port=int(raw.get("Port", 0)),
        socket_path=str(raw.get("SocketPath", "")),
        weights=weights if weights_raw else (1, 1),
        enable_tag_override=bool(raw.get("EnableTagOverride", False)),
        proxy=raw.get("Proxy"),
        connect=raw.get("Connect"),
        locality=raw.get("Locality"),
        peer_name=str(raw.get("PeerName", "")),
    )
