"""The pure routing model, the removal guard and the debounce arithmetic."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from registrator.model import Check
from registrator.proxy_config import build_routing
from registrator.proxy_config.guard import PendingRemoval, debounce_due, guard_removals
from registrator.proxy_config.model import ServerCheck, server_name
from tests.proxy.support import instance, snapshot, vhost_tags

WEB = vhost_tags("web", "web.example")


class TestBuildRouting:
    def test_routes_backends_and_healthy_servers(self) -> None:
        snap = snapshot(
            [
                instance("n1:b:80", "web", 32002, WEB),
                instance(
                    "n1:a:80",
                    "web",
                    32001,
                    WEB,
                    checks=[Check(http="http://127.0.0.1:32001/hz?x=1", interval="2s")],
                ),
                instance("n1:c:80", "web", 32003, WEB, status="critical"),
                instance("n1:d:80", "web", 32004, WEB, status="warning"),
            ]
        )
        model = build_routing(snap)
        assert model.problems == ()
        (router,) = model.routers
        assert (router.name, router.backend, router.rule) == ("web", "web", "Host(`web.example`)")
        assert router.priority == len(router.rule)
        (backend,) = model.backends
        assert [s.name for s in backend.servers] == ["n1:a:80", "n1:b:80", "n1:d:80"]
        assert backend.http_check == ("GET", "/hz?x=1")
        assert backend.servers[0].check == ServerCheck("http", 2000)

    def test_service_without_healthy_instance_keeps_its_route(self) -> None:
        model = build_routing(snapshot([instance("n1:a:80", "web", 1, WEB, status="critical")]))
        assert [r.name for r in model.routers] == ["web"]
        assert model.backends[0].servers == ()

    def test_untagged_and_disabled_services_are_not_routed(self) -> None:
        model = build_routing(
            snapshot(
                [
                    instance("n1:a:80", "plain", 1, ["udp", "x=y"]),
                    instance(
                        "n1:b:80",
                        "off",
                        2,
                        [
                            t.replace("enable=true", "enable=false")
                            for t in vhost_tags("off", "o.ex")
                        ],
                    ),
                ]
            )
        )
        assert model.routers == ()
        assert model.backends == ()

    def test_deterministic_in_any_order(self) -> None:
        """Instance order and tag order do not change the model (no spurious reloads)."""
        instances = [
            instance(
                f"n1:c{i}:80",
                f"svc{i % 7}",
                30000 + i,
                [*vhost_tags(f"svc{i % 7}", f"s{i % 7}.example"), f"t{i}"],
            )
            for i in range(40)
        ]
        first = build_routing(snapshot(instances))
        rng = random.Random(7)
        for _ in range(5):
            shuffled = [
                replace(
                    i,
                    service=replace(
                        i.service, tags=tuple(rng.sample(i.service.tags, len(i.service.tags)))
                    ),
                )
                for i in instances
            ]
            rng.shuffle(shuffled)
            assert build_routing(snapshot(shuffled, version=9)) == first

    def test_server_names_are_stable_and_safe(self) -> None:
        assert server_name("node:web-1:8080") == "node:web-1:8080"
        odd = server_name("node:web 1\n:8080")
        assert odd.startswith("node:web_1_:8080-")
        assert odd == server_name("node:web 1\n:8080")
        assert server_name("x" * 300) != server_name("x" * 299)

    def test_consul_tagged_services_and_port_override(self) -> None:
        tags = [
            "traefik.enable=true",
            "traefik.http.routers.api.rule=Host(`api.example`)",
            "traefik.http.routers.api.priority=50",
            "traefik.http.services.apisvc.loadbalancer.server.port=9000",
            "traefik.http.services.apisvc.loadbalancer.healthcheck.path=/ready",
            "traefik.http.services.apisvc.loadbalancer.healthcheck.interval=5s",
        ]
        model = build_routing(snapshot([instance("n1:a:80", "api", 31000, tags)]))
        (router,) = model.routers
        assert (router.backend, router.priority, router.explicit_priority) == ("apisvc", 50, True)
        (backend,) = model.backends
        assert backend.servers[0].port == 9000
        assert backend.health_check is not None
        assert backend.health_check.interval == "5s"

    def test_tcp_router(self) -> None:
        tags = [
            "traefik.tcp.routers.pg.rule=HostSNI(`*`)",
            "traefik.tcp.routers.pg.entrypoints=tcp-5432",
        ]
        model = build_routing(snapshot([instance("n1:a:5432", "pg", 31000, tags)]))
        assert model.routers[0].protocol == "tcp"
        assert model.backends[0].protocol == "tcp"
        assert model.backends[0].name == "pg"

    @pytest.mark.parametrize(
        ("tags", "fragment"),
        [
            (["traefik.http.routers.r.rule=Host(`a b`)"], "not an RFC 1123 host name"),
            (["traefik.http.routers.r.entrypoints=web"], "has no rule"),
            (
                [
                    "traefik.http.routers.r.rule=Host(`a.example`)",
                    "traefik.http.services.s1.loadbalancer.passhostheader=true",
                    "traefik.http.services.s2.loadbalancer.passhostheader=true",
                ],
                "declare several",
            ),
            (
                [
                    "traefik.http.routers.r.rule=Host(`a.example`)",
                    "traefik.http.routers.r.service=nowhere",
                ],
                "no service declares",
            ),
        ],
    )
    def test_problems_are_reported(self, tags: list[str], fragment: str) -> None:
        model = build_routing(snapshot([instance("n1:a:80", "svc", 1, tags)]))
        assert model.routers == ()
        assert any(fragment in p for p in model.problems), model.problems

    def test_instances_disagreeing_on_tags(self) -> None:
        a = instance("n1:a:80", "web", 1, vhost_tags("web", "one.example"))
        b = instance("n1:b:80", "web", 2, vhost_tags("web", "two.example"))
        model = build_routing(snapshot([b, a]))
        assert model.routers[0].rule == "Host(`one.example`)"
        assert "instances disagree" in model.problems[0]

    def test_router_name_collision_between_services(self) -> None:
        a = instance("n1:a:80", "alpha", 1, ["traefik.http.routers.r.rule=Host(`a.example`)"])
        b = instance("n1:b:80", "beta", 2, ["traefik.http.routers.r.rule=Host(`b.example`)"])
        model = build_routing(snapshot([a, b]))
        assert [r.service for r in model.routers] == ["alpha"]
        assert "already declared by service alpha" in model.problems[0]

    def test_unusable_addresses_are_left_out(self) -> None:
        bad = instance("n1:a:80", "web", 1, WEB, address="10.0.0.1\nserver x")
        good = instance("n1:b:80", "web", 2, WEB)
        model = build_routing(snapshot([bad, good]))
        assert [s.name for s in model.backends[0].servers] == ["n1:b:80"]
        assert "unusable address" in model.problems[0]


def _model(servers: dict[str, int]):  # type: ignore[no-untyped-def]
    """services -> instance counts, one backend each."""
    return build_routing(
        snapshot(
            instance(f"n1:{svc}{i}:80", svc, 30000 + i, vhost_tags(svc, f"{svc}.example"))
            for svc, n in servers.items()
            for i in range(n)
        )
    )


class TestRemovalGuard:
    def test_ordinary_changes_pass(self) -> None:
        before, after = _model({"a": 4, "b": 4}), _model({"a": 3, "b": 5})
        d = guard_removals(before, after, None, now=0, fraction=0.5, confirm_after=2)
        assert d.model == after
        assert d.pending is None
        assert not d.refused

    def test_all_servers_of_a_service_refused_then_confirmed(self) -> None:
        before, after = _model({"a": 4, "b": 1}), _model({"a": 4, "b": 0})
        d = guard_removals(before, after, None, now=10, fraction=0.5, confirm_after=2)
        assert d.emptied == ("b",)
        assert len(d.refused) == 1
        assert d.model == before  # b keeps its server for now
        again = guard_removals(d.model, after, d.pending, now=11, fraction=0.5, confirm_after=2)
        assert again.model == before
        assert again.pending == d.pending
        later = guard_removals(
            again.model, after, again.pending, now=12.5, fraction=0.5, confirm_after=2
        )
        assert later.confirmed
        assert later.model == after
        assert later.pending is None

    def test_service_vanishing_keeps_backend_and_route(self) -> None:
        before, after = _model({"a": 4, "b": 2}), _model({"a": 4})
        d = guard_removals(before, after, None, now=0, fraction=0.5, confirm_after=2)
        assert {b.name for b in d.model.backends} == {"a", "b"}
        assert {r.name for r in d.model.routers} == {"a", "b"}

    def test_more_than_the_fraction_refused_additions_still_applied(self) -> None:
        before = _model({"a": 10})
        after = _model({"a": 4, "c": 1})  # 6 of 10 gone, c is new
        d = guard_removals(before, after, None, now=0, fraction=0.5, confirm_after=2)
        assert d.refused
        assert round(d.fraction, 2) == 0.6
        assert {b.name: len(b.servers) for b in d.model.backends} == {"a": 10, "c": 1}

    def test_exactly_the_fraction_passes(self) -> None:
        d = guard_removals(
            _model({"a": 10}), _model({"a": 5}), None, now=0, fraction=0.5, confirm_after=2
        )
        assert not d.refused

    def test_recovery_clears_the_pending_removal(self) -> None:
        before, after = _model({"a": 2}), _model({"a": 0})
        d = guard_removals(before, after, None, now=0, fraction=0.5, confirm_after=2)
        assert d.pending is not None
        back = guard_removals(d.model, before, d.pending, now=5, fraction=0.5, confirm_after=2)
        assert back.pending is None
        assert back.model == before

    def test_off_and_first_render(self) -> None:
        before, after = _model({"a": 2}), _model({})
        assert (
            guard_removals(before, after, None, now=0, fraction=1.0, confirm_after=2).model == after
        )
        assert (
            guard_removals(None, after, None, now=0, fraction=0.5, confirm_after=2).model == after
        )

    def test_a_different_removal_restarts_the_clock(self) -> None:
        before = _model({"a": 1, "b": 1})
        pending = PendingRemoval(0, frozenset({("http", "zzz", "gone")}))
        d = guard_removals(
            before, _model({"a": 1}), pending, now=100, fraction=0.5, confirm_after=2
        )
        assert d.pending is not None
        assert d.pending.first_seen == 100
        assert not d.confirmed


@pytest.mark.parametrize(
    ("first", "last", "due"),
    [(0.0, 0.0, 0.2), (0.0, 1.0, 1.2), (0.0, 1.9, 2.0), (0.0, 5.0, 2.0)],
)
def test_debounce_due(first: float, last: float, due: float) -> None:
    """consul-template's quiescence: min after the last change, never past first + max."""
    assert debounce_due(first, last, 0.2, 2.0) == pytest.approx(due)


PURE_MODULES = [
    "registrator/routing_hints.py",
    "registrator/proxy_config/model.py",
    "registrator/proxy_config/guard.py",
    "registrator/proxy_config/haproxy.py",
    "registrator/proxy_config/traefik.py",
]
ALLOWED_IMPORTS = {
    "__future__",
    "collections",
    "dataclasses",
    "functools",
    "hashlib",
    "ipaddress",
    "json",
    "re",
    "typing",
    "urllib",
    "jinja2",
    "registrator",
}


@pytest.mark.parametrize("path", PURE_MODULES)
def test_pure_modules_do_no_io(path: str) -> None:
    """The pure core imports no I/O: no os, socket, subprocess, asyncio, time or logging."""
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).resolve().parents[2] / path).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
            if node.module.startswith("registrator."):
                assert node.module in (
                    "registrator.model",
                    "registrator.durations",
                    "registrator.routing_hints",
                    "registrator.proxy_config.model",
                ), node.module
    assert names <= ALLOWED_IMPORTS, names - ALLOWED_IMPORTS
