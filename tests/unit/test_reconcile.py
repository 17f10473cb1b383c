"""The reconcile plan: what to register and deregister, and what is never touched."""

from __future__ import annotations

from dataclasses import replace

import pytest

from registrator.model import Check, ServiceInstance
from registrator.reconcile import (
    exit_keeps_registration,
    id_owner,
    plan,
    ttl_check_id,
    with_ttl_check,
)
from tests.unit.test_mapping import load


def inst(sid: str, port: int = 80, **kw: object) -> ServiceInstance:
    return ServiceInstance(id=sid, name="web", address="127.0.0.1", port=port, **kw)  # type: ignore[arg-type]


A, B, C = inst("n1:web-a:80"), inst("n1:web-b:80"), inst("n1:web-c:80")
OTHER = inst("n2:x:80")
MANUAL = inst("manual-1")


@pytest.mark.parametrize(
    ("desired", "actual", "kw", "register", "deregister", "kept"),
    [
        ({}, {}, {}, [], [], []),
        ({"n1:web-a:80": A}, {}, {}, ["n1:web-a:80"], [], []),
        ({"n1:web-a:80": A}, {"n1:web-a:80": A}, {}, [], [], []),
        # A changed port is registered again (the agent replaces the definition).
        ({"n1:web-a:80": replace(A, port=81)}, {"n1:web-a:80": A}, {}, ["n1:web-a:80"], [], []),
        # Ours and gone: deregistered.
        ({}, {"n1:web-a:80": A}, {"ours": {"n1:web-a:80"}}, [], ["n1:web-a:80"], []),
        # Not ours (from before a restart): left alone without -cleanup...
        ({}, {"n1:web-a:80": A}, {}, [], [], []),
        # ...and deregistered with it.
        ({}, {"n1:web-a:80": A}, {"cleanup": True}, [], ["n1:web-a:80"], []),
        # Another node's services and hand-made ones: never, even with -cleanup.
        ({}, {"n2:x:80": OTHER, "manual-1": MANUAL}, {"cleanup": True}, [], [], []),
        # -deregister on-success keeps a failed container's services.
        (
            {},
            {"n1:web-b:80": B},
            {"ours": {"n1:web-b:80"}, "keep_containers": {"web-b"}},
            [],
            [],
            ["n1:web-b:80"],
        ),
        # Mixed.
        (
            {"n1:web-a:80": A, "n1:web-c:80": C},
            {"n1:web-a:80": A, "n1:web-b:80": B, "n2:x:80": OTHER},
            {"ours": {"n1:web-b:80"}},
            ["n1:web-c:80"],
            ["n1:web-b:80"],
            [],
        ),
    ],
)
def test_plan(desired, actual, kw, register, deregister, kept) -> None:  # type: ignore[no-untyped-def]
    p = plan(desired, actual, node="n1", **kw)
    assert [i.id for i in p.register] == register
    assert list(p.deregister) == deregister
    assert list(p.kept) == kept


def test_plan_sees_check_changes() -> None:
    with_check = replace(A, checks=(Check(tcp="127.0.0.1:80", interval="10s"),))
    assert [i.id for i in plan({A.id: with_check}, {A.id: A}, node="n1").register] == [A.id]


@pytest.mark.parametrize(
    ("sid", "owner"),
    [
        ("vm:web1:8080", ("vm", "web1")),
        ("vm:dns1:53:udp", ("vm", "dns1")),
        ("host.example.com:my_app.1:80", ("host.example.com", "my_app.1")),
        ("custom-id", None),
        ("vm:web1", None),
    ],
)
def test_id_owner(sid: str, owner: tuple[str, str] | None) -> None:
    assert id_owner(sid) == owner


def test_ttl_check_is_added_passing_with_deregister_after() -> None:
    out = with_ttl_check(A, 10)
    (check,) = out.checks
    assert check.to_consul() == {
        "CheckID": ttl_check_id(A.id),
        "TTL": "10s",
        "Status": "passing",
        "DeregisterCriticalServiceAfter": "30s",
    }


@pytest.mark.parametrize(
    ("running", "code", "keep"),
    [
        (True, 0, False),
        (False, 0, False),
        (False, 3, True),
        (False, 137, False),
        (False, 143, False),
    ],
)
def test_on_success_exit_rule(running: bool, code: int, keep: bool) -> None:
    container = replace(load("bridge_single"), running=running, exit_code=code)
    assert exit_keeps_registration(container) is keep
