"""The catalog the DNS tests serve, and a helper to make instances."""

from __future__ import annotations

from registrator.model import CatalogInstance, CatalogSnapshot, Health, Protocol, ServiceInstance

NODES = (("host.dotted", "127.0.0.3"), ("node1", "127.0.0.1"), ("node2", "127.0.0.2"))
NODE_ADDRESSES = dict(NODES)


def inst(
    name: str,
    address: str,
    port: int,
    *,
    node: str = "node1",
    tags: tuple[str, ...] = (),
    status: Health = "passing",
    weights: tuple[int, int] = (1, 1),
    protocol: Protocol = "tcp",
) -> CatalogInstance:
    return CatalogInstance(
        node=node,
        node_address=NODE_ADDRESSES.get(node, "127.0.0.1"),
        service=ServiceInstance(
            id=f"{node}:{name}-{address}:{port}",
            name=name,
            address=address,
            port=port,
            protocol=protocol,
            tags=tags,
        ),
        status=status,
        weights=weights,
    )


def snapshot(*instances: CatalogInstance, version: int = 1) -> CatalogSnapshot:
    return CatalogSnapshot(instances=instances, nodes=NODES, version=version)


CATALOG = snapshot(
    inst("web", "127.0.0.10", 8080, tags=("primary", "v1", "a.b")),
    inst("web", "127.0.0.11", 8081, node="node2", tags=("v1",), weights=(5, 2)),
    inst("web", "127.0.0.12", 8082, tags=("v2",), status="warning", weights=(10, 3)),
    inst("web", "127.0.0.13", 8083, tags=("v1",), status="critical"),
    inst("down", "127.0.0.20", 80, status="critical"),
    inst("db", "", 5432, node="node2"),  # no own address: the node is the SRV target
    inst("ext", "db.example.net", 443),  # a hostname: SRV only
    inst("v6", "::1", 80),
    inst("v6", "127.0.0.30", 80),
    inst("v6only", "::2", 80),
    inst("dns", "127.0.0.40", 53, protocol="udp"),
    inst("dns", "127.0.0.41", 53, tags=("udp",)),
    inst("dns", "127.0.0.42", 53),
    inst("Api", "127.0.0.50", 9000, tags=("Blue",)),
    *(inst("big", f"127.0.1.{i}", 9000 + i) for i in range(1, 61)),
)
