"""Random SERVICE_* metadata never crashes the mapping, and whatever it registers is something
Consul accepts (the Meta and check rules from consul-api-spec.md)."""

from __future__ import annotations

import re
from dataclasses import replace
from types import MappingProxyType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registrator.durations import parse_go_duration
from registrator.mapping import MappingPolicy, services_for
from tests.unit.test_mapping import load

KEYS = st.sampled_from(
    [
        "NAME",
        "ID",
        "TAGS",
        "IGNORE",
        "NETWORK",
        "CHECK_HTTP",
        "CHECK_TCP",
        "CHECK_TTL",
        "CHECK_SCRIPT",
        "CHECK_INTERVAL",
        "CHECK_TIMEOUT",
        "CHECK_INITIAL_STATUS",
        "CHECK_DEREGISTER_AFTER",
        "CHECK_2_GRPC",
        "8080_NAME",
        "8080_TAGS",
        "8080_CHECK_HTTP",
        "8443_IGNORE",
        "REGION",
        "FOO.BAR",
        "consul-x",
        "X" * 130,
    ]
) | st.text(min_size=1, max_size=20)
VALUES = st.text(max_size=60) | st.sampled_from(["10s", "soon", "passing", "/health", "true", ""])
BASES = ["bridge", "per_port", "udp", "host_env_ports", "two_networks", "malformed"]


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(BASES),
    extra=st.dictionaries(KEYS.map(lambda k: "SERVICE_" + k), VALUES, max_size=12),
    internal=st.booleans(),
    explicit=st.booleans(),
)
def test_random_metadata_never_crashes_and_stays_valid(
    base: str, extra: dict[str, str], internal: bool, explicit: bool
) -> None:
    container = load(base)
    container = replace(container, labels=MappingProxyType({**container.labels, **extra}))
    policy = MappingPolicy(
        node="vm",
        host_address="192.0.2.1",
        internal=internal,
        explicit=explicit,
        port_env=("SERVER_*_PORT",),
    )
    mapped = services_for(container, policy)
    ids = [i.id for i in mapped.instances]
    assert len(ids) == len(set(ids))
    for inst in mapped.instances:
        body = inst.to_consul()
        assert body["Name"]
        assert re.fullmatch(r"[A-Za-z0-9._-]+", body["Name"])
        assert len(body["Meta"]) <= 64
        for key, value in body["Meta"].items():
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,128}", key)
            assert not key.startswith("consul-")
            assert len(value) <= 512
            assert not key.startswith("check_")
        assert len(body["Tags"]) <= 128
        for check in [body["Check"]] if "Check" in body else body.get("Checks", []):
            for field in ("Interval", "Timeout", "TTL", "DeregisterCriticalServiceAfter"):
                if field in check:
                    assert (parse_go_duration(check[field]) or 0) > 0
            assert check.get("Status", "passing") in ("passing", "warning", "critical")
    for skip in mapped.skipped:
        assert re.fullmatch(r"[a-z_]+", skip.reason)
        assert skip.detail
