"""JSON shapes of Consul's API objects, built from the state store's records.

Field order follows the Go structs (``encoding/json`` writes fields in declaration order and map
keys sorted). ``full=True`` keeps fields that Go omits when empty, so filter selectors can always
name them. Go maps are :class:`~.bexpr.GoMap` so a filter on a missing key is not an error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from .bexpr import GoMap
from .gotypes import go_json
from .state import Check, CheckEntry, Node, Service, ServiceAddress, ServiceEntry

__all__ = [
    "agent_service_json",
    "check_service_node_json",
    "content_hash",
    "health_check_json",
    "node_json",
    "node_service_json",
    "service_node_json",
]

JSONObj = dict[str, Any]


def _gomap(m: Mapping[str, Any]) -> GoMap:
    return GoMap(sorted(m.items()))


def _tagged(m: Mapping[str, ServiceAddress]) -> GoMap:
    return GoMap((k, {"Address": v.address, "Port": v.port}) for k, v in sorted(m.items()))


def _weights(svc: Service) -> JSONObj:
    return {"Passing": svc.weights[0], "Warning": svc.weights[1]}


def _default_proxy(svc: Service) -> Any:
    if svc.proxy:
        return svc.proxy
    return {"Mode": "", "MeshGateway": {}, "Expose": {}}


def node_json(node: Node) -> JSONObj:
    """``structs.Node`` (catalog/nodes, the ``Node`` of health entries)."""
    return {
        "ID": node.id,
        "Node": node.name,
        "Address": node.address,
        "Datacenter": node.datacenter,
        "TaggedAddresses": _gomap(node.tagged_addresses),
        "Meta": _gomap(node.meta),
        "CreateIndex": node.create_index,
        "ModifyIndex": node.modify_index,
    }


def agent_service_json(svc: Service, datacenter: str, *, full: bool = False) -> JSONObj:
    """``api.AgentService`` as ``/v1/agent/services`` returns it."""
    out: JSONObj = {}
    if svc.kind or full:
        out["Kind"] = svc.kind
    out["ID"] = svc.id
    out["Service"] = svc.name
    out["Tags"] = list(svc.tags)
    out["Meta"] = _gomap(svc.meta)
    out["Port"] = svc.port
    out["Address"] = svc.address
    if svc.socket_path or full:
        out["SocketPath"] = svc.socket_path
    if svc.tagged_addresses or full:
        out["TaggedAddresses"] = _tagged(svc.tagged_addresses)
    out["Weights"] = _weights(svc)
    out["EnableTagOverride"] = svc.enable_tag_override
    if svc.proxy or full:
        out["Proxy"] = svc.proxy
    if svc.connect or full:
        out["Connect"] = svc.connect
    if svc.peer_name or full:
        out["PeerName"] = svc.peer_name
    out["Datacenter"] = datacenter
    if svc.locality or full:
        out["Locality"] = svc.locality
    return out


def content_hash(agent_service: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit digest of an agent service (clients treat it as opaque)."""
    digest = hashlib.sha256(go_json(dict(agent_service)).encode("utf-8")).hexdigest()
    return digest[:16]


def node_service_json(entry: ServiceEntry, *, full: bool = False) -> JSONObj:
    """``structs.NodeService`` (health entries' ``Service``, catalog/node's ``Services``)."""
    svc = entry.service
    out: JSONObj = {}
    if svc.kind or full:
        out["Kind"] = svc.kind
    out["ID"] = svc.id
    out["Service"] = svc.name
    out["Tags"] = list(svc.tags)
    out["Address"] = svc.address
    if svc.tagged_addresses or full:
        out["TaggedAddresses"] = _tagged(svc.tagged_addresses)
    out["Meta"] = _gomap(svc.meta)
    if svc.port or full:
        out["Port"] = svc.port
    if svc.socket_path or full:
        out["SocketPath"] = svc.socket_path
    out["Weights"] = _weights(svc)
    out["EnableTagOverride"] = svc.enable_tag_override
    out["Proxy"] = _default_proxy(svc)
    out["Connect"] = svc.connect or {}
    if svc.locality or full:
        out["Locality"] = svc.locality
    out["PeerName"] = svc.peer_name
    out["CreateIndex"] = entry.create_index
    out["ModifyIndex"] = entry.modify_index
    return out


def service_node_json(node: Node, entry: ServiceEntry, *, full: bool = False) -> JSONObj:
    """``structs.ServiceNode`` (``/v1/catalog/service/:name``)."""
    svc = entry.service
    out: JSONObj = {
        "ID": node.id,
        "Node": node.name,
        "Address": node.address,
        "Datacenter": node.datacenter,
        "TaggedAddresses": _gomap(node.tagged_addresses),
        "NodeMeta": _gomap(node.meta),
        "ServiceKind": svc.kind,
        "ServiceID": svc.id,
        "ServiceName": svc.name,
        "ServiceTags": list(svc.tags),
        "ServiceAddress": svc.address,
    }
    if svc.tagged_addresses or full:
        out["ServiceTaggedAddresses"] = _tagged(svc.tagged_addresses)
    out["ServiceWeights"] = _weights(svc)
    out["ServiceMeta"] = _gomap(svc.meta)
    out["ServicePort"] = svc.port
    out["ServiceSocketPath"] = svc.socket_path
    out["ServiceEnableTagOverride"] = svc.enable_tag_override
    out["ServiceProxy"] = _default_proxy(svc)
    out["ServiceConnect"] = svc.connect or {}
    out["ServiceLocality"] = svc.locality
    if svc.peer_name or full:
        out["ServicePeerName"] = svc.peer_name
    out["CreateIndex"] = entry.create_index
    out["ModifyIndex"] = entry.modify_index
    return out


def health_check_json(
    check: Check,
    node_name: str,
    service: Service | None,
    create_index: int = 0,
    modify_index: int = 0,
) -> JSONObj:
    """``structs.HealthCheck``; ServiceName/ServiceTags mirror the owning service."""
    return {
        "Node": node_name,
        "CheckID": check.check_id,
        "Name": check.name,
        "Status": check.status,
        "Notes": check.notes,
        "Output": check.output,
        "ServiceID": check.service_id,
        "ServiceName": service.name if service else "",
        "ServiceTags": list(service.tags) if service else [],
        "Type": check.type,
        "Interval": check.interval,
        "Timeout": check.timeout,
        "ExposedPort": check.exposed_port,
        "Definition": GoMap(check.definition),
        "CreateIndex": create_index,
        "ModifyIndex": modify_index,
    }


def check_entry_json(entry: CheckEntry, service: Service | None) -> JSONObj:
    return health_check_json(
        entry.check, entry.node, service, entry.create_index, entry.modify_index
    )


def check_service_node_json(
    node: Node, entry: ServiceEntry, checks: list[JSONObj], *, full: bool = False
) -> JSONObj:
    """``structs.CheckServiceNode`` (``/v1/health/service/:name``)."""
    return {
        "Node": node_json(node),
        "Service": node_service_json(entry, full=full),
        "Checks": checks,
    }
