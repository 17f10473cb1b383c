"""routing_hints: three hint dialects -> Traefik Consul Catalog tags, and the rule grammar."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registrator.routing_hints import (
    RuleError,
    canonical_rule,
    check_key_value,
    hint_tags,
    parse_rule,
    split_tag,
    tcp_entrypoint_port,
)

UNSAFE = re.compile(r"[\x00-\x1f\x7f]|\{\{|\}\}|#|'|\$")


def tags_of(*args: object, **kw: object) -> dict[str, str]:
    tags, problems = hint_tags(*args, **kw)  # type: ignore[arg-type]
    assert not problems, problems
    return dict(t.split("=", 1) for t in tags)


class TestNginxProxy:
    def test_virtual_host_and_path(self) -> None:
        """VIRTUAL_HOST (comma list, wildcard) and VIRTUAL_PATH become one router rule."""
        got = tags_of(
            {},
            {"VIRTUAL_HOST": "a.example, *.b.example", "VIRTUAL_PATH": "/api"},
            service_name="web",
            port=8080,
        )
        assert got == {
            "traefik.enable": "true",
            "traefik.http.routers.web.rule": "(Host(`a.example`) || "
            r"HostRegexp(`^.+\.b\.example$`)) && PathPrefix(`/api`)",
        }

    def test_single_host_without_path(self) -> None:
        got = tags_of({}, {"VIRTUAL_HOST": "A.Example"}, service_name="My_Web", port=80)
        assert got["traefik.http.routers.my-web.rule"] == "Host(`a.example`)"

    def test_labels_are_read_too_and_env_wins(self) -> None:
        got = tags_of({"VIRTUAL_HOST": "label.example"}, {}, service_name="web", port=80)
        assert got["traefik.http.routers.web.rule"] == "Host(`label.example`)"
        got = tags_of(
            {"VIRTUAL_HOST": "label.example"},
            {"VIRTUAL_HOST": "env.example"},
            service_name="web",
            port=80,
        )
        assert got["traefik.http.routers.web.rule"] == "Host(`env.example`)"

    @pytest.mark.parametrize(("port", "routed"), [(8080, True), (9090, False)])
    def test_virtual_port_selects_the_port(self, port: int, routed: bool) -> None:
        env = {"VIRTUAL_HOST": "a.example", "VIRTUAL_PORT": "8080"}
        tags, problems = hint_tags({}, env, service_name="web", port=port, ports=[8080, 9090])
        assert bool(tags) is routed
        assert not problems

    @pytest.mark.parametrize(("port", "routed"), [(80, True), (443, False)])
    def test_without_selector_the_lowest_port_gets_the_hint(self, port: int, routed: bool) -> None:
        env = {"VIRTUAL_HOST": "a.example"}
        tags, _ = hint_tags({}, env, service_name="web", port=port, ports=[443, 80])
        assert bool(tags) is routed

    @pytest.mark.parametrize(
        ("env", "fragment"),
        [
            ({"VIRTUAL_HOST": "~^a\\.example$"}, "regular expressions"),
            ({"VIRTUAL_HOST": "a.example", "VIRTUAL_PORT": "http"}, "VIRTUAL_PORT"),
            ({"VIRTUAL_HOST": "a.example", "VIRTUAL_PROTO": "https"}, "VIRTUAL_PROTO"),
            ({"VIRTUAL_HOST": "a.example", "VIRTUAL_PATH": "api"}, "does not start with /"),
        ],
    )
    def test_unsupported_forms_are_reported(self, env: dict[str, str], fragment: str) -> None:
        tags, problems = hint_tags({}, env, service_name="web", port=80)
        assert tags == ()
        assert len(problems) == 1
        assert fragment in problems[0]

    def test_bad_host_is_dropped_the_good_one_kept(self) -> None:
        tags, problems = hint_tags(
            {}, {"VIRTUAL_HOST": "ok.example,bad host"}, service_name="web", port=80
        )
        assert tags == ("traefik.enable=true", "traefik.http.routers.web.rule=Host(`ok.example`)")
        assert problems == ("VIRTUAL_HOST host 'bad host' is not an RFC 1123 host name",)


class TestTraefikLabels:
    def test_docker_labels_become_consul_tags(self) -> None:
        """Same grammar; docker.* dropped; server.port selects the port and is not copied (it
        would override the registered, published port in Consul)."""
        labels = {
            "traefik.enable": "true",
            "traefik.http.routers.api.rule": "Host(`api.example`) && PathPrefix(`/v1`)",
            "traefik.http.routers.api.entrypoints": "web, websecure",
            "traefik.http.routers.api.middlewares": "auth@file",
            "traefik.http.routers.api.tls.certresolver": "le",
            "traefik.http.services.api.loadbalancer.server.port": "8080",
            "traefik.http.services.api.loadbalancer.healthcheck.path": "/health",
            "traefik.docker.network": "front",
        }
        got = tags_of(labels, {}, service_name="api", port=8080, ports=[8080, 9000])
        assert got == {
            "traefik.enable": "true",
            "traefik.http.routers.api.entrypoints": "web,websecure",
            "traefik.http.routers.api.middlewares": "auth@file",
            "traefik.http.routers.api.rule": "Host(`api.example`) && PathPrefix(`/v1`)",
            "traefik.http.routers.api.tls.certresolver": "le",
            "traefik.http.services.api.loadbalancer.healthcheck.path": "/health",
        }
        assert hint_tags(labels, {}, service_name="api", port=9000, ports=[8080, 9000])[0] == ()

    def test_two_services_on_two_ports(self) -> None:
        labels = {
            "traefik.http.routers.a.rule": "Host(`a.example`)",
            "traefik.http.routers.a.service": "sa",
            "traefik.http.services.sa.loadbalancer.server.port": "8080",
            "traefik.http.routers.b.rule": "Host(`b.example`)",
            "traefik.http.routers.b.service": "sb",
            "traefik.http.services.sb.loadbalancer.server.port": "9090",
        }
        on_a = tags_of(labels, {}, service_name="x-8080", port=8080, ports=[8080, 9090])
        on_b = tags_of(labels, {}, service_name="x-9090", port=9090, ports=[8080, 9090])
        assert "traefik.http.routers.a.rule" in on_a
        assert "traefik.http.routers.b.rule" not in on_a
        assert "traefik.http.routers.b.rule" in on_b
        assert "traefik.http.routers.a.rule" not in on_b

    def test_keys_are_case_insensitive_and_v2_rules_rewritten(self) -> None:
        got = tags_of(
            {"traefik.HTTP.Routers.Web.Rule": "Host(`a.example`, `b.example`)"},
            {},
            service_name="web",
            port=80,
        )
        assert got["traefik.http.routers.web.rule"] == "Host(`a.example`) || Host(`b.example`)"

    def test_enable_false_wins(self) -> None:
        labels = {"traefik.enable": "false", "traefik.http.routers.a.rule": "Host(`a.example`)"}
        env = {"VIRTUAL_HOST": "a.example"}
        assert hint_tags(labels, env, service_name="a", port=80) == (("traefik.enable=false",), ())

    def test_invalid_rule_drops_the_router(self) -> None:
        labels = {
            "traefik.http.routers.a.rule": "Header(`X`, `y`)",
            "traefik.http.routers.a.entrypoints": "web",
        }
        tags, problems = hint_tags(labels, {}, service_name="a", port=80)
        assert tags == ()
        assert "matcher Header is not supported" in problems[0]


class TestFabio:
    def test_http_and_tcp_routes(self) -> None:
        got = tags_of(
            {},
            {},
            service_name="db",
            port=5432,
            tags=["urlprefix-a.example/x", "urlprefix-/y", "urlprefix-:5432 proto=tcp", "other"],
        )
        assert got == {
            "traefik.enable": "true",
            "traefik.http.routers.db-1.rule": "Host(`a.example`) && PathPrefix(`/x`)",
            "traefik.http.routers.db-2.rule": "PathPrefix(`/y`)",
            "traefik.tcp.routers.db-tcp-5432.entrypoints": "tcp-5432",
            "traefik.tcp.routers.db-tcp-5432.rule": "HostSNI(`*`)",
        }

    @pytest.mark.parametrize(
        "tag",
        [
            "urlprefix-/x strip=/x",
            "urlprefix-a.example/x proto=https",
            "urlprefix-a.example",
            "urlprefix-:x proto=tcp",
            "urlprefix-a b/x",
        ],
    )
    def test_unsupported_forms_are_reported(self, tag: str) -> None:
        tags, problems = hint_tags({}, {}, service_name="s", port=80, tags=[tag])
        assert tags == ()
        assert len(problems) == 1

    def test_invalid_traefik_tags_in_service_tags_are_reported(self) -> None:
        _, problems = hint_tags(
            {}, {}, service_name="s", port=80, tags=["traefik.http.routers.x.rule=Host(`a b`)"]
        )
        assert problems
        assert problems[0].startswith("SERVICE_TAGS traefik.http.routers.x.rule")


INJECTIONS = [
    "a.example\nbackend evil",
    "a.example#x",
    'a.example"',
    "a.example'",
    "a.example`) || Host(`b",
    "a.example{{ .Env }}",
    "a.example}",
    "a.example\x00",
    "a.example acl x",
]
PATH_INJECTIONS = [
    "/x\nbackend evil",
    "/x#frag",
    '/x"',
    "/x'",
    "/x`",
    "/x{{ .Env }}",
    "/x{y}",
    "/x y",
    "/x\ty",
    "/$HOME",
    "/x%zz",
]


class TestInjection:
    @pytest.mark.parametrize("host", INJECTIONS)
    def test_virtual_host(self, host: str) -> None:
        tags, problems = hint_tags({}, {"VIRTUAL_HOST": host}, service_name="s", port=80)
        assert tags == ()
        assert problems

    @pytest.mark.parametrize("path", PATH_INJECTIONS)
    def test_virtual_path(self, path: str) -> None:
        env = {"VIRTUAL_HOST": "a.example", "VIRTUAL_PATH": path}
        tags, problems = hint_tags({}, env, service_name="s", port=80)
        assert tags == ()
        assert problems

    @pytest.mark.parametrize("path", PATH_INJECTIONS)
    def test_fabio_path(self, path: str) -> None:
        tags, _problems = hint_tags({}, {}, service_name="s", port=80, tags=[f"urlprefix-{path}"])
        assert tags == ()

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("traefik.http.routers.a.rule", "Host(`a.example\nx`)"),
            ("traefik.http.routers.a.rule", "Host(`a.example`) && Path(`/{{x}}`)"),
            ("traefik.http.routers.a.rule", 'Host("a.example") # c'),
            ("traefik.http.routers.a.entrypoints", "web\nglobal"),
            ("traefik.http.routers.a.middlewares", "x{{.}}"),
            ("traefik.http.middlewares.m.headers.customrequestheaders.x", "v\r\nInjected: 1"),
            ("traefik.http.routers.a\nb.rule", "Host(`a.example`)"),
        ],
    )
    def test_traefik_labels(self, key: str, value: str) -> None:
        labels = {"traefik.http.routers.ok.rule": "Host(`ok.example`)", key: value}
        tags, problems = hint_tags(labels, {}, service_name="s", port=80)
        assert problems
        for tag in tags:
            assert "\n" not in tag
            assert "{{" not in tag
            assert "\r" not in tag

    @settings(max_examples=300, deadline=None)
    @given(
        host=st.text(max_size=40),
        path=st.text(max_size=40),
        label=st.text(max_size=40),
        fabio=st.text(max_size=40),
    )
    def test_fuzz_never_emits_unsafe_tags(
        self, host: str, path: str, label: str, fabio: str
    ) -> None:
        """Whatever the input, every emitted tag passes the writer's own checks again and holds
        no control character, `{{`, `#`, quote or `$`."""
        tags, _ = hint_tags(
            {"traefik.http.routers.r.rule": label, "traefik.http.routers.r.entrypoints": label},
            {"VIRTUAL_HOST": host, "VIRTUAL_PATH": path},
            service_name="s",
            port=80,
            tags=[f"urlprefix-{fabio}"],
        )
        for tag in tags:
            kv = split_tag(tag)
            assert kv is not None
            canonical, problem = check_key_value(*kv)
            assert problem is None
            assert canonical == kv[1]
            assert not UNSAFE.search(tag), tag


class TestRuleGrammar:
    @pytest.mark.parametrize(
        ("rule", "canonical"),
        [
            ("Host(`a.example`)", "Host(`a.example`)"),
            (
                "Host(`a`) && (PathPrefix(`/x`) || Path(`/y`))",
                "Host(`a`) && (PathPrefix(`/x`) || Path(`/y`))",
            ),
            ('Host("a.example")', 'Host("a.example")'),
            ("Host(`a`,`b`)", "Host(`a`) || Host(`b`)"),
            (r"HostRegexp(`^.+\.a\.example$`)", r"HostRegexp(`^.+\.a\.example$`)"),
        ],
    )
    def test_valid(self, rule: str, canonical: str) -> None:
        assert canonical_rule(rule) == canonical

    def test_dnf(self) -> None:
        dnf = parse_rule("Host(`a`) && (PathPrefix(`/x`) || Path(`/y`))")
        assert [[m.render() for m in term] for term in dnf] == [
            ["Host(`a`)", "PathPrefix(`/x`)"],
            ["Host(`a`)", "Path(`/y`)"],
        ]

    @pytest.mark.parametrize(
        "rule",
        [
            "",
            "Host(`a`",
            "Host(`a`) &&",
            "!Host(`a`)",
            "Host(`*.a.example`)",
            "HostRegexp(`.*`)",
            "Method(`GET`)",
            "HostSNI(`*`)",
            "Host(`a`) Host(`b`)",
            "Host(`a\\`)",
            " || ".join(f"Host(`h{i}`)" for i in range(70)),
        ],
    )
    def test_invalid(self, rule: str) -> None:
        with pytest.raises(RuleError):
            parse_rule(rule)

    def test_tcp_rules_take_host_sni_only(self) -> None:
        assert parse_rule("HostSNI(`*`)", "tcp")[0][0].value == "*"
        with pytest.raises(RuleError):
            parse_rule("Host(`a`)", "tcp")

    @pytest.mark.parametrize(
        ("name", "port"),
        [("tcp-5432", 5432), ("pg-5432", 5432), ("web", None), ("tcp-99999", None)],
    )
    def test_tcp_entrypoint_port(self, name: str, port: int | None) -> None:
        assert tcp_entrypoint_port(name) == port
