"""The container -> service mapping, table-driven over `docker inspect` JSON recorded from a real
engine (tests/fixtures/inspect/, made by tests/fixtures/record_inspect.py). A few cases add labels
to a recording to reach a rule the recordings do not cover on their own."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from registrator.errors import InspectError
from registrator.mapping import (
    MappingPolicy,
    image_base_name,
    sanitise_name,
    services_for,
    split_tags,
)
from registrator.model import Container

FIXTURES = Path(__file__).parent.parent / "fixtures" / "inspect"
NODE = "vm"  # tests/fixtures/docker_info.json "Name"
HOST = "192.0.2.10"  # the host address the shell would have found


def load(
    name: str, labels: dict[str, str] | None = None, env: dict[str, str] | None = None
) -> Container:
    container = Container.from_inspect(json.loads((FIXTURES / f"{name}.json").read_text()))
    if labels:
        container = replace(container, labels=MappingProxyType({**container.labels, **labels}))
    if env:
        container = replace(container, env=MappingProxyType({**container.env, **env}))
    return container


def policy(**overrides: Any) -> MappingPolicy:
    return MappingPolicy(**{"node": NODE, "host_address": HOST, **overrides})


@dataclass
class Case:
    id: str
    fixture: str
    bodies: list[dict[str, Any]]
    skips: list[tuple[str, str | None]] = field(default_factory=list)  # (reason, port)
    policy: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] | None = None
    env: dict[str, str] | None = None


def body(
    sid: str,
    name: str,
    address: str,
    port: int,
    tags: list[str] | None = None,
    meta: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "ID": sid,
        "Name": name,
        "Tags": tags or [],
        "Address": address,
        "Port": port,
        "Meta": meta or {},
        **extra,
    }


CASES = [
    Case(
        "bridge: published bindings give host IP and port; two ports get -<port>",
        "bridge",
        [
            body("vm:web1:8080", "web-8080", "127.0.0.1", 18080, ["a", "b"]),
            body("vm:web1:8443", "web-8443", "127.0.0.1", 18443, ["a", "b"]),
        ],
    ),
    Case(
        "bridge: one port keeps the image base name",
        "bridge_single",
        [body("vm:api1:8080", "api", "127.0.0.1", 18081)],
    ),
    Case(
        "bridge: -ip overrides the binding's address",
        "bridge_single",
        [body("vm:api1:8080", "api", "10.1.2.3", 18081)],
        policy={"ip": "10.1.2.3"},
    ),
    Case(
        "bridge: --node names the ID's first part; -tags adds to every service",
        "bridge",
        [
            body("edge-7:web1:8080", "web-8080", "127.0.0.1", 18080, ["a", "b", "prod"]),
            body("edge-7:web1:8443", "web-8443", "127.0.0.1", 18443, ["a", "b", "prod"]),
        ],
        policy={"node": "edge-7", "tags": ("prod", "a")},
    ),
    Case(
        "bridge: exposed-only ports are not registered without -internal",
        "exposed_only",
        [],
        [("not_published", "8080/tcp")],
    ),
    Case(
        "bridge: -internal registers the container IP and the exposed port",
        "exposed_only",
        [body("vm:api2:8080", "api", "172.17.0.4", 8080)],
        policy={"internal": True},
    ),
    Case(
        "bridge: -internal wins over -ip, as in registrator",
        "bridge_single",
        [body("vm:api1:8080", "api", "172.17.0.3", 8080)],
        policy={"internal": True, "ip": "127.0.0.1"},
    ),
    Case(
        "host network: SERVER_*_PORT captures the label; two ports are <name>-<label>",
        "host_env_ports",
        [
            body("vm:tomcat1:31009", "tomcat-ajp", HOST, 31009),
            body("vm:tomcat1:31080", "tomcat-http", HOST, 31080),
        ],
        policy={"port_env": ("SERVER_*_PORT",)},
    ),
    Case(
        "host network: -ip is the address of env ports",
        "host_env_ports",
        [
            body("vm:tomcat1:31009", "tomcat-ajp", "127.0.0.1", 31009),
            body("vm:tomcat1:31080", "tomcat-http", "127.0.0.1", 31080),
        ],
        policy={"port_env": ("SERVER_*_PORT",), "ip": "127.0.0.1"},
    ),
    Case(
        "host network: per-label keys (SERVICE_HTTP_*) name, tag, check and ignore a port",
        "host_env_ports",
        [
            body(
                "vm:tomcat1:31080",
                "shop",
                "127.0.0.1",
                31080,
                ["web"],
                Check={"HTTP": "http://127.0.0.1:31080/health", "Interval": "10s"},
            ),
        ],
        [("ignored", "31009/tcp")],
        policy={"port_env": ("SERVER_*_PORT",), "ip": "127.0.0.1"},
        labels={
            "SERVICE_HTTP_NAME": "shop",
            "SERVICE_HTTP_TAGS": "web",
            "SERVICE_HTTP_CHECK_HTTP": "/health",
            "SERVICE_AJP_IGNORE": "1",
        },
    ),
    Case(
        "host network: the default --port-env PORT, no label",
        "host_port_env",
        [body("vm:worker1:31500", "worker", HOST, 31500)],
    ),
    Case(
        "host network: no env port matches, so the EXPOSEd ports",
        "host_exposed",
        [body("vm:metrics1:9100", "metrics", HOST, 9100)],
    ),
    Case(
        "host network: env ports matched, so EXPOSEd ports are not added",
        "host_exposed",
        [body("vm:metrics1:31999", "metrics", HOST, 31999)],
        env={"PORT": "31999"},
    ),
    Case(
        "host network: invalid port values are skipped with a reason, the valid one registers",
        "host_bad_port",
        [body("vm:tomcat2:31090", "tomcat-admin", HOST, 31090)],
        [("invalid_port", "SERVER_AJP_PORT"), ("invalid_port", "SERVER_HTTP_PORT")],
        policy={"port_env": ("SERVER_*_PORT",)},
    ),
    Case(
        "host network: no ports at all",
        "host_env_ports",
        [],
        [("no_ports", None)],
    ),
    Case(
        "user-defined network: published binding, like the default bridge",
        "user_network",
        [body("vm:api3:8080", "api", "127.0.0.1", 18082)],
    ),
    Case(
        "user-defined network: -internal registers its IP",
        "user_network",
        [body("vm:api3:8080", "api", "172.31.250.2", 8080)],
        policy={"internal": True},
    ),
    Case(
        "two networks: -internal picks the primary network (NetworkMode)",
        "two_networks",
        [body("vm:api4:8080", "api", "172.31.251.2", 8080)],
        policy={"internal": True},
    ),
    Case(
        "two networks: --network chooses",
        "two_networks",
        [body("vm:api4:8080", "api", "172.31.252.2", 8080)],
        policy={"internal": True, "network": "regtest-back"},
    ),
    Case(
        "two networks: SERVICE_NETWORK beats --network",
        "two_networks",
        [body("vm:api4:8080", "api", "172.31.251.2", 8080)],
        policy={"internal": True, "network": "regtest-back"},
        labels={"SERVICE_NETWORK": "regtest-front"},
    ),
    Case(
        "two networks: a network the container is not on is a skip",
        "two_networks",
        [],
        [("network_not_found", "8080/tcp")],
        policy={"internal": True, "network": "nope"},
    ),
    Case(
        "IPv6 network: -internal registers IPv4 first",
        "ipv6_network",
        [body("vm:api6:8080", "api", "172.31.253.2", 8080)],
        policy={"internal": True},
    ),
    Case(
        "IPv6: -useIpFromLabel with an IPv6 address; checks bracket it",
        "bridge_single",
        [
            body(
                "vm:api1:8080",
                "api",
                "fd00:5eed::2",
                18081,
                Check={"TCP": "[fd00:5eed::2]:18081", "Interval": "10s"},
            )
        ],
        policy={"use_ip_from_label": "addr"},
        labels={"addr": "fd00:5eed::2/64", "SERVICE_CHECK_TCP": "true"},
    ),
    Case(
        "-useIpFromLabel with a label that is no IP skips the container",
        "bridge_single",
        [],
        [("invalid_ip_label", None)],
        policy={"use_ip_from_label": "addr"},
        labels={"addr": "not-an-ip"},
    ),
    Case(
        "UDP: its own ID suffix and tag",
        "udp",
        [
            body("vm:dns1:53", "dns-53", "127.0.0.1", 18054),
            body("vm:dns1:53:udp", "dns-53", "127.0.0.1", 18053, ["udp"]),
        ],
    ),
    Case("no ports", "no_ports", [], [("no_ports", None)]),
    Case(
        "labels beat env vars; other keys become Meta",
        "labels_vs_env",
        [
            body(
                "vm:api5:8080",
                "fromlabel",
                "127.0.0.1",
                18083,
                ["envtag"],
                {"region": "eu", "version": "2"},
            )
        ],
    ),
    Case(
        "per-port keys beat container keys; per-port NAME has no suffix; IGNORE per port",
        "per_port",
        [
            body(
                "vm:shop1:8080",
                "shop-8080",
                "127.0.0.1",
                18084,
                ["http", "public"],
                Check={"HTTP": "http://127.0.0.1:18084/health", "Interval": "5s"},
            ),
            body(
                "vm:shop1:9090",
                "shop-metrics",
                "127.0.0.1",
                18090,
                Check={"TCP": "127.0.0.1:18090", "Interval": "5s"},
            ),
        ],
        [("ignored", "8443/tcp")],
    ),
    Case(
        "-explicit: only ports that a NAME names",
        "per_port",
        [
            body(
                "vm:shop1:9090",
                "shop-metrics",
                "127.0.0.1",
                18090,
                Check={"TCP": "127.0.0.1:18090", "Interval": "5s"},
            )
        ],
        [("explicit_only", "8080/tcp"), ("ignored", "8443/tcp")],
        policy={"explicit": True},
        labels={"SERVICE_NAME": ""},
    ),
    Case(
        "-explicit: an unnamed container is skipped",
        "bridge_single",
        [],
        [("explicit_only", "8080/tcp")],
        policy={"explicit": True},
    ),
    Case(
        "SERVICE_IGNORE=false does not ignore",
        "bridge_single",
        [body("vm:api1:8080", "api", "127.0.0.1", 18081)],
        labels={"SERVICE_IGNORE": "false"},
    ),
    Case(
        "SERVICE_ID on one port is used as is",
        "bridge_single",
        [body("api-blue", "api", "127.0.0.1", 18081)],
        labels={"SERVICE_ID": "api-blue"},
    ),
    Case(
        "a container-wide SERVICE_ID on several ports stays unique",
        "udp",
        [
            body("dns:53", "dns-53", "127.0.0.1", 18054),
            body("dns:53:udp", "dns-53", "127.0.0.1", 18053, ["udp"]),
        ],
        labels={"SERVICE_ID": "dns"},
    ),
    Case(
        "several checks: numbered groups, script split with shell rules, TTL without interval",
        "bridge_single",
        [
            body(
                "vm:api1:8080",
                "api",
                "127.0.0.1",
                18081,
                Checks=[
                    {
                        "HTTP": "http://127.0.0.1:18081/ready",
                        "Method": "HEAD",
                        "Interval": "10s",
                        "Timeout": "2s",
                        "Status": "passing",
                        "DeregisterCriticalServiceAfter": "1m",
                    },
                    {"Args": ["/bin/check", "--addr", "127.0.0.1:18081", "a b"], "Interval": "30s"},
                    {"TTL": "15s"},
                    {"GRPC": "127.0.0.1:18081/health.v1", "GRPCUseTLS": True, "Interval": "10s"},
                ],
            ),
        ],
        labels={
            "SERVICE_CHECK_HTTP": "ready",
            "SERVICE_CHECK_HTTP_METHOD": "head",
            "SERVICE_CHECK_TIMEOUT": "2s",
            "SERVICE_CHECK_INITIAL_STATUS": "passing",
            "SERVICE_CHECK_DEREGISTER_AFTER": "1m",
            "SERVICE_CHECK_2_SCRIPT": "/bin/check --addr $SERVICE_IP:$SERVICE_PORT 'a b'",
            "SERVICE_CHECK_2_INTERVAL": "30s",
            "SERVICE_CHECK_3_TTL": "15s",
            "SERVICE_CHECK_4_GRPC": "health.v1",
            "SERVICE_CHECK_4_GRPC_USE_TLS": "true",
        },
    ),
    Case(
        "two check types in one group: registrator's order keeps http",
        "bridge_single",
        [
            body(
                "vm:api1:8080",
                "api",
                "127.0.0.1",
                18081,
                Check={
                    "HTTP": "https://127.0.0.1:18081/",
                    "TLSSkipVerify": True,
                    "Interval": "10s",
                },
            )
        ],
        [("check_conflict", "8080/tcp")],
        labels={
            "SERVICE_CHECK_HTTPS": "/",
            "SERVICE_CHECK_TCP": "1",
            "SERVICE_CHECK_TLS_SKIP_VERIFY": "true",
        },
    ),
    Case(
        "a bad interval skips that service with a reason",
        "malformed",
        [],
        [("invalid_check", "8080/tcp"), ("name_sanitised", "8080/tcp")],
        labels={"SERVICE_CHECK_HTTP": "/health"},
    ),
    Case(
        "bad initial status skips that service",
        "bridge_single",
        [],
        [("invalid_check", "8080/tcp")],
        labels={"SERVICE_CHECK_TCP": "1", "SERVICE_CHECK_INITIAL_STATUS": "green"},
    ),
    Case(
        "CHECK_CMD is not supported: a reason, not a silent drop",
        "bridge_single",
        [],
        [("invalid_check", "8080/tcp")],
        labels={"SERVICE_CHECK_CMD": "/bin/true"},
    ),
    Case(
        "an unbalanced quote in a script check",
        "bridge_single",
        [],
        [("invalid_check", "8080/tcp")],
        labels={"SERVICE_CHECK_SCRIPT": "echo 'oops"},
    ),
]


CASES += [
    Case(
        "nginx-proxy VIRTUAL_HOST/VIRTUAL_PATH become Traefik-grammar tags",
        "bridge_single",
        [
            body(
                "vm:api1:8080",
                "api",
                "127.0.0.1",
                18081,
                [
                    "traefik.enable=true",
                    "traefik.http.routers.api.rule=Host(`shop.example.com`) && PathPrefix(`/api`)",
                ],
            )
        ],
        env={"VIRTUAL_HOST": "shop.example.com", "VIRTUAL_PATH": "/api"},
    ),
    Case(
        "a routing hint that could inject configuration is dropped with a reason",
        "bridge_single",
        [body("vm:api1:8080", "api", "127.0.0.1", 18081)],
        [("routing_hint_invalid", "8080/tcp")],
        env={"VIRTUAL_HOST": "bad host\n#x"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_mapping(case: Case) -> None:
    mapped = services_for(load(case.fixture, case.labels, case.env), policy(**case.policy))
    assert [i.to_consul() for i in sorted(mapped.instances, key=lambda i: i.id)] == case.bodies
    assert sorted((s.reason, s.port) for s in mapped.skipped) == sorted(
        case.skips, key=lambda s: (s[0], s[1] or "")
    )


def test_malformed_values_are_sanitised_and_explained() -> None:
    """The recorded `bad1`: a name with a combining accent and a NUL, Meta keys Consul refuses,
    2,000 tags. It still registers, and each change carries a reason."""
    mapped = services_for(load("malformed"), policy())
    (instance,) = mapped.instances
    assert instance.name == "web"
    assert len(instance.tags) == 128
    assert instance.tags[0] == "tag0000"
    assert dict(instance.meta) == {}
    reasons = {(s.reason, s.event) for s in mapped.skipped}
    assert reasons == {
        ("name_sanitised", "registration_adjusted"),
        ("tags_truncated", "registration_adjusted"),
        ("meta_invalid", "registration_adjusted"),
    }
    details = " ".join(s.detail for s in mapped.skipped)
    assert "Key contains invalid characters" in details
    assert "Key prefix 'consul-' is reserved for internal use" in details


def test_a_bad_container_does_not_affect_another() -> None:
    """Mapping is per container: the malformed one's skips never leak into a good one's result."""
    bad = services_for(load("malformed", labels={"SERVICE_CHECK_HTTP": "/x"}), policy())
    good = services_for(load("bridge_single"), policy())
    assert bad.instances == ()
    assert [i.id for i in good.instances] == ["vm:api1:8080"]
    assert good.skipped == ()


def test_meta_is_capped_at_64_pairs() -> None:
    labels = {f"SERVICE_K{n:03d}": "v" for n in range(70)}
    mapped = services_for(load("bridge_single", labels), policy())
    assert len(mapped.instances[0].meta) == 64
    assert [s.reason for s in mapped.skipped] == ["meta_truncated"]


def test_not_running() -> None:
    container = replace(load("bridge_single"), running=False)
    assert [s.reason for s in services_for(container, policy()).skipped] == ["not_running"]


def test_registration_equality_ignores_meta_order() -> None:
    a = services_for(load("labels_vs_env"), policy()).instances
    b = services_for(load("labels_vs_env"), policy()).instances
    assert a == b


@pytest.mark.parametrize(
    ("image", "base"),
    [
        ("localhost:5000/acme/web:1.2", "web"),
        ("acme/api:latest", "api"),
        ("redis", "redis"),
        ("ghcr.io/org/app@sha256:abcd", "app"),
        ("registry:5000/app", "app"),
    ],
)
def test_image_base_name(image: str, base: str) -> None:
    assert image_base_name(image) == base


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("web", "web"),
        ("wéb", "web"),
        ("my app", "my-app"),
        ("a/b", "a-b"),
        ("\x00", ""),
        ("v1.2_x", "v1.2_x"),
    ],
)
def test_sanitise_name(raw: str, clean: str) -> None:
    assert sanitise_name(raw) == clean


@pytest.mark.parametrize(
    ("value", "tags"),
    [("a,b", ["a", "b"]), (r"a\,b,c", ["a,b", "c"]), ("", [""]), (" a , b ", ["a", "b"])],
)
def test_split_tags(value: str, tags: list[str]) -> None:
    assert split_tags(value) == tags


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"Id": "x"},
        {"Id": "x", "Config": {"ExposedPorts": {"80/xyz": {}}}},
        {"Id": "x", "Config": {}, "NetworkSettings": {"Ports": {"abc/tcp": None}}},
    ],
)
def test_unusable_inspect_json_is_an_inspect_error(raw: dict[str, Any]) -> None:
    with pytest.raises(InspectError):
        Container.from_inspect(raw)
