"""The state store on a manual clock: indexes, idempotency, TTL expiry, reaping, sync."""

from __future__ import annotations

import pytest

from tests.consul_emulator.clock import ManualClock
from tests.consul_emulator.state import (
    CRITICAL,
    PASSING,
    SERF_CHECK_ID,
    CheckSpec,
    NotTTLError,
    Service,
    Store,
    aggregated_status,
)

WEB = Service(id="web-1", name="web", tags=("v1",), port=8080)


def ttl_check(check_id: str = "service:web-1", ttl: float = 10.0, **kw: object) -> CheckSpec:
    return CheckSpec(check_id=check_id, name="web ttl", type="ttl", ttl=ttl, **kw)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(clock: ManualClock) -> Store:
    return Store(clock=clock, start_index=100, check_reap_interval=30.0, dcsa_min=60.0)


def test_bootstrap_has_node_serf_check_and_consul_service(store: Store) -> None:
    assert [n.name for n in store.nodes()] == ["node1"]
    assert [c.check.check_id for c in store.check_entries()] == [SERF_CHECK_ID]
    assert [e.service.id for e in store.service_entries()] == ["consul"]
    assert store.index == 101


def test_each_write_bumps_the_index_once_and_idempotent_writes_do_not(store: Store) -> None:
    start = store.index
    store.register_service(WEB, [ttl_check()])
    assert store.index == start + 1
    store.register_service(WEB, [ttl_check()])
    assert store.index == start + 1
    store.register_service(Service(id="web-1", name="web", tags=("v2",)), [ttl_check()])
    assert store.index == start + 2


def test_service_index_survives_deletion_as_a_tombstone(store: Store) -> None:
    store.register_service(WEB, [])
    created = store.service_index("WEB")
    assert store.deregister_service("web-1")
    deleted = store.service_index("web")
    assert deleted > created
    assert store.service_entries("web") == []
    assert store.service_index("unknown") == store.table_index("nodes", "services")


def test_reregistration_restores_status_and_output(store: Store) -> None:
    store.register_service(WEB, [ttl_check()])
    store.update_ttl("service:web-1", PASSING, "fine")
    store.register_service(WEB, [ttl_check(status=CRITICAL)])
    check = store.local_checks["service:web-1"].check
    assert (check.status, check.output) == (PASSING, "fine")


def test_ttl_expiry_output_with_and_without_previous_output(
    store: Store, clock: ManualClock
) -> None:
    store.register_service(WEB, [ttl_check(status=PASSING)])
    clock.advance(10.5)
    store.run_due()
    assert store.local_checks["service:web-1"].check.output == "TTL expired"
    store.update_ttl("service:web-1", PASSING, "all good")
    clock.advance(11)
    store.run_due()
    check = store.local_checks["service:web-1"].check
    assert check.status == CRITICAL
    assert check.output == "TTL expired (last output before timeout follows): all good"


def test_update_ttl_errors(store: Store) -> None:
    store.register_check(CheckSpec(check_id="http", name="http", type="http", interval="10s"))
    with pytest.raises(NotTTLError):
        store.update_ttl("http", PASSING, "")
    with pytest.raises(KeyError):
        store.update_ttl("nope", PASSING, "")


def test_output_is_truncated_to_output_max_size(store: Store) -> None:
    store.register_service(WEB, [ttl_check(output_max_size=8)])
    store.update_ttl("service:web-1", PASSING, "0123456789")
    output = store.local_checks["service:web-1"].check.output
    assert output == "01234567 ... (captured 8 of 10 bytes)"


def test_dcsa_is_raised_to_the_minimum_and_reaped_by_the_periodic_reaper(
    store: Store, clock: ManualClock
) -> None:
    store.register_service(WEB, [ttl_check(deregister_after=1.0)])
    assert store.local_checks["service:web-1"].reap_after == 60.0
    clock.advance(10)  # TTL expires at t=10: critical from then on
    store.run_due()
    clock.advance(55)  # t=65: reaper ran at 30 and 60; critical for 50s at most
    store.run_due()
    assert "web-1" in store.local_services
    clock.advance(30)  # reaper at t=90: critical for 80s > 60s
    store.run_due()
    assert "web-1" not in store.local_services
    assert store.service_entries("web") == []


def test_passing_resets_the_critical_clock(store: Store, clock: ManualClock) -> None:
    store.register_service(WEB, [ttl_check(ttl=1000.0, deregister_after=60.0)])
    store.update_ttl("service:web-1", CRITICAL, "down")
    clock.advance(50)
    store.update_ttl("service:web-1", PASSING, "up")
    store.update_ttl("service:web-1", CRITICAL, "down")
    clock.advance(50)
    store.run_due()
    assert "web-1" in store.local_services
    clock.advance(40)
    store.run_due()
    assert "web-1" not in store.local_services


def test_sync_reverts_catalog_edits_except_tags_under_enable_tag_override(store: Store) -> None:
    store.register_service(WEB, [])
    store.register_service(Service(id="eto", name="eto", tags=("a",), enable_tag_override=True), [])
    for sid, name in (("web-1", "web"), ("eto", "eto")):
        store.catalog_register(
            {
                "Node": "node1",
                "Address": "127.0.0.1",
                "Service": {"ID": sid, "Service": name, "Tags": ["x"]},
            }
        )
    store.catalog_register(
        {"Node": "node1", "Address": "127.0.0.1", "Service": {"ID": "extra", "Service": "extra"}}
    )
    store.sync()
    tags = {e.service.id: e.service.tags for e in store.node_service_entries("node1")}
    assert tags == {"consul": (), "eto": ("x",), "web-1": ("v1",)}
    assert store.local_services["eto"].tags == ("x",)


def test_aggregated_status_precedence() -> None:
    from tests.consul_emulator.state import Check

    def checks(*statuses: str) -> list[Check]:
        return [Check(check_id=f"c{i}", name="c", status=s) for i, s in enumerate(statuses)]

    assert aggregated_status([]) == "passing"
    assert aggregated_status(checks("passing", "warning")) == "warning"
    assert aggregated_status(checks("warning", "critical")) == "critical"
    assert aggregated_status(checks("bogus")) == ""
    maint = [Check(check_id="_node_maintenance", name="m"), *checks("critical")]
    assert aggregated_status(maint) == "maintenance"
