"""Renderers: HAProxy output checked by the real `haproxy -c`, Traefik output checked against the
SchemaStore schema (when ../shared/schemas has it) and the writer's own semantic checks; hostile
catalog data never reaches either file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from registrator.model import CatalogSnapshot, Check
from registrator.proxy_config import build_routing, check_traefik, render_haproxy, render_traefik
from registrator.proxy_config.haproxy import (
    HaproxyOptions,
    parse_servers_state,
    plan_runtime,
    render_template,
    runtime_reply_ok,
)
from registrator.proxy_config.model import RoutingModel
from tests.proxy.support import HAPROXY, instance, snapshot, vhost_tags

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO.parent / "shared" / "schemas" / "traefik-v3-file-provider.json"
OPTIONS = HaproxyOptions(bind_host="127.0.0.1", bind_port=18080, socket="/run/haproxy/admin.sock")


def haproxy_check(text: str, tmp_path: Path) -> None:
    if HAPROXY is None:
        pytest.skip("no haproxy binary")
    path = tmp_path / "candidate.cfg"
    path.write_text(text)
    result = subprocess.run(
        [HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def traefik_checks(model: RoutingModel) -> dict[str, Any]:
    text, doc, _ = render_traefik(model)
    parsed = yaml.safe_load(text)
    assert parsed == doc  # our emitter and an independent YAML parser agree
    assert check_traefik(parsed) == []
    if SCHEMA.exists():
        jsonschema.validate(parsed, json.loads(SCHEMA.read_text()))
    return parsed


def mixed_catalog() -> CatalogSnapshot:
    http_check = [Check(http="http://127.0.0.1:32001/health", interval="3s")]
    return snapshot(
        [
            instance(
                "n1:web1:80",
                "web",
                32001,
                vhost_tags("web", "web.example,*.web.example", "/app"),
                checks=http_check,
            ),
            instance(
                "n1:web2:80", "web", 32002, vhost_tags("web", "web.example,*.web.example", "/app")
            ),
            instance(
                "n1:api:80",
                "api",
                32010,
                [
                    "traefik.http.routers.api.rule=Host(`api.example`) && "
                    "(PathPrefix(`/v1`) || Path(`/health`))",
                    "traefik.http.routers.api.priority=100",
                    "traefik.http.routers.api.entrypoints=web",
                    "traefik.http.services.api.loadbalancer.passhostheader=true",
                ],
                checks=[Check(tcp="127.0.0.1:32011")],
            ),
            instance(
                "n1:down:80", "down", 32020, vhost_tags("down", "down.example"), status="critical"
            ),
            instance(
                "n1:pg:5432",
                "pg",
                32030,
                [
                    "traefik.tcp.routers.pg.rule=HostSNI(`*`)",
                    "traefik.tcp.routers.pg.entrypoints=tcp-15432",
                ],
            ),
            instance(
                "n1:secure:80",
                "secure",
                32040,
                [
                    "traefik.http.routers.secure.rule=Host(`secure.example`)",
                    "traefik.http.routers.secure.tls.certresolver=le",
                    "traefik.http.routers.secure.middlewares=auth@file",
                ],
            ),
            instance("n1:v6:80", "six", 32050, vhost_tags("six", "six.example"), address="::1"),
        ]
    )


class TestHaproxy:
    def test_valid_and_deterministic(self, tmp_path: Path) -> None:
        model = build_routing(mixed_catalog())
        render = render_haproxy(model, OPTIONS)
        haproxy_check(render.text, tmp_path)
        assert render_haproxy(build_routing(mixed_catalog()), OPTIONS).text == render.text
        text = render.text
        assert (
            "use_backend be_web if { req.hdr(host),field(1,:),lower -m str web.example } "
            "{ path_beg /app }" in text
        )
        assert "-m end .web.example" in text
        assert "option httpchk GET /health" in text
        assert "server n1:web1:80 127.0.0.1:32001 check inter 3000" in text
        assert "server n1:v6:80 [::1]:32050" in text
        assert "frontend fe_tcp_15432\n    mode tcp\n    bind 127.0.0.1:15432" in text
        # the api router (priority 100) is tested first
        assert text.index("use_backend be_api") < text.index("use_backend be_web")
        # TLS/middleware routers are Traefik-only, and said so
        assert "be_secure" not in text
        assert any("secure" in p and "middlewares" in p for p in render.problems)

    def test_service_without_healthy_instance_gets_503_backend(self, tmp_path: Path) -> None:
        text = render_haproxy(build_routing(mixed_catalog()), OPTIONS).text
        block = text.split("\nbackend be_down\n")[1].split("\n\n")[0]
        assert "http-request return status 503" in block
        assert "server " not in block
        haproxy_check(text, tmp_path)

    def test_empty_catalog_is_valid(self, tmp_path: Path) -> None:
        render = render_haproxy(RoutingModel(), OPTIONS)
        assert "default_backend be_no_route" in render.text
        haproxy_check(render.text, tmp_path)

    def test_user_template(self, tmp_path: Path) -> None:
        source = (
            "global\ndefaults\n  mode http\n"
            "  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\n"
            "frontend f\n  bind {{ bind }}\n"
            "{% for r in http_routers %}"
            "  use_backend {{ r.backend }} if {{ r.condition }}\n"
            "{% endfor %}"
            "{% for b in backends %}backend {{ b.name }}\n"
            "{% for s in b.servers %}  server {{ s.line }}\n{% endfor %}"
            "{% endfor %}"
        )
        render = render_template(source, build_routing(mixed_catalog()), OPTIONS)
        assert "server n1:web2:80 127.0.0.1:32002" in render.text
        haproxy_check(render.text, tmp_path)


class TestTraefik:
    def test_schema_and_semantics(self) -> None:
        doc = traefik_checks(build_routing(mixed_catalog()))
        http = doc["http"]
        assert http["routers"]["api"] == {
            "entryPoints": ["web"],
            "priority": 100,
            "rule": "Host(`api.example`) && (PathPrefix(`/v1`) || Path(`/health`))",
            "service": "api",
        }
        assert http["services"]["web"]["loadBalancer"]["servers"] == [
            {"url": "http://127.0.0.1:32001"},
            {"url": "http://127.0.0.1:32002"},
        ]
        assert http["routers"]["secure"]["tls"] == {"certResolver": "le"}
        assert http["services"]["six"]["loadBalancer"]["servers"] == [{"url": "http://[::1]:32050"}]
        assert doc["tcp"]["services"]["pg"]["loadBalancer"]["servers"] == [
            {"address": "127.0.0.1:32030"}
        ]

    def test_no_healthy_instance_is_a_health_checked_placeholder_not_an_empty_list(self) -> None:
        doc = traefik_checks(build_routing(mixed_catalog()))
        down = doc["http"]["services"]["down"]["loadBalancer"]
        assert down["servers"] == [{"url": "http://127.0.0.1:1"}]
        assert "healthCheck" in down
        assert doc["http"]["routers"]["down"]["service"] == "down"

    def test_empty_catalog(self) -> None:
        assert traefik_checks(RoutingModel()) == {"http": {"routers": {}, "services": {}}}

    @pytest.mark.parametrize(
        ("doc", "fragment"),
        [
            (
                {"http": {"routers": {"r": {"rule": "Host(`a`)", "service": "x"}}, "services": {}}},
                "not defined",
            ),
            (
                {"http": {"routers": {}, "services": {"s": {"loadBalancer": {"servers": []}}}}},
                "empty",
            ),
            (
                {
                    "http": {
                        "routers": {},
                        "services": {
                            "s": {"loadBalancer": {"servers": [{"url": "x"}]}, "weighted": {}}
                        },
                    }
                },
                "exactly one",
            ),
            (
                {
                    "http": {
                        "routers": {"r": {"rule": "Host(`{{ .X }}`)", "service": "a@file"}},
                        "services": {},
                    }
                },
                "'{{'",
            ),
            (
                {
                    "http": {
                        "routers": {
                            "r": {"rule": "Host(`a`)", "service": "a@file", "middlewares": ["m"]}
                        },
                        "services": {},
                    }
                },
                "middleware",
            ),
            (
                {
                    "http": {
                        "routers": {"r": {"rule": "Bogus(`a`)", "service": "a@file"}},
                        "services": {},
                    }
                },
                "not supported",
            ),
            (
                {
                    "tcp": {
                        "routers": {},
                        "services": {"s": {"loadBalancer": {"servers": [{"address": "nope"}]}}},
                    }
                },
                "host:port",
            ),
            ({"bogus": {}}, "unknown top-level"),
        ],
    )
    def test_semantic_checks_catch(self, doc: dict[str, Any], fragment: str) -> None:
        problems = check_traefik(doc)
        assert any(fragment in p for p in problems), problems


HOSTILE_TAGS = [
    "traefik.http.routers.a.rule=Host(`a.example`)\n  server evil 1.2.3.4:80",
    "traefik.http.routers.b.rule=Host(`b.example`) && PathPrefix(`/x#y`)",
    'traefik.http.routers.c.rule=Host(`c.example"`)',
    "traefik.http.routers.d.rule=Host(`d.example`) && PathPrefix(`/{{ .Env.SECRET }}`)",
    "traefik.http.routers.e.rule=Host(`e.example`) && PathPrefix(`/x y`)",
    "traefik.http.routers.f.rule=Host(`f.example`)",
    "traefik.http.routers.f.entrypoints=web\nglobal",
    "traefik.http.routers.g\nh.rule=Host(`g.example`)",
    "traefik.http.routers.ok.rule=Host(`ok.example`)",
]


def hostile_catalog() -> CatalogSnapshot:
    """Hand-made Consul registrations trying to inject configuration through every field."""
    return snapshot(
        [
            instance("n1:x:80", "web\nbackend evil", 31001, HOSTILE_TAGS),
            instance(
                "n1:y:80\n  server evil 6.6.6.6:80",
                "web\nbackend evil",
                31002,
                HOSTILE_TAGS,
                checks=[Check(http="http://127.0.0.1:31002/h ealth\n  option x", interval="1s")],
            ),
            instance("n1:z:80", "web\nbackend evil", 31003, HOSTILE_TAGS, address="1.2.3.4 #"),
            instance(
                "n1:q:80", "{{ .Env.X }}", 31004, ["traefik.http.routers.q.rule=Host(`q.example`)"]
            ),
        ]
    )


class TestInjection:
    def test_haproxy(self, tmp_path: Path) -> None:
        model = build_routing(hostile_catalog())
        render = render_haproxy(model, OPTIONS)
        haproxy_check(render.text, tmp_path)
        text = render.text
        assert "option x" not in text
        assert "{{" not in text
        assert "SECRET" not in text
        sections = [line.split()[0] for line in text.splitlines() if line and line[0] not in " #"]
        assert sections == ["global", "defaults", "frontend", "backend", "backend", "backend"]
        servers = [line.split() for line in text.splitlines() if line.startswith("    server ")]
        # x, y and q (z's address is refused); names are single safe tokens
        assert sorted(w[2] for w in servers) == [f"127.0.0.1:{p}" for p in (31001, 31002, 31004)]
        assert all(len(words) == 3 or words[3] == "check" for words in servers)
        routed = sorted(r.name for r in model.routers)
        assert routed == ["ok", "q"]  # f is dropped whole for its bad entrypoints value
        assert model.problems  # every rejection is reported

    def test_traefik(self) -> None:
        model = build_routing(hostile_catalog())
        doc = traefik_checks(model)
        text = json.dumps(doc)
        assert "evil" not in text.replace("web-backend-evil", "")
        assert "{{" not in text
        assert set(doc["http"]["routers"]) == {"ok", "q"}
        assert doc["http"]["routers"]["q"]["service"] == "env-x"


COLUMNS = (
    "be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health "
    "srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord "
    "srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port"
)
STATE = (  # `show servers state be_web` from HAProxy 2.6.12
    f"1\n# {COLUMNS}\n"
    "3 be_web 1 n1:web1:80 127.0.0.1 2 0 1 1 0 1 0 2 6 0 0 0 - 32001 - 0 0 - - 0\n"
    "3 be_web 2 n1:gone:80 127.0.0.1 2 0 1 1 0 1 0 2 6 0 0 0 - 32999 - 0 0 - - 0\n"
    "3 be_web 3 n1:web2:80 127.0.0.1 0 1 1 1 0 1 0 0 0 0 0 0 - 30000 - 0 0 - - 0\n"
)


class TestRuntimePlan:
    def test_parse_and_plan(self) -> None:
        """Missing servers are added (health on, then ready), moved ones re-addressed, servers
        left in maintenance made ready, unwanted ones drained and deleted."""
        state = parse_servers_state(STATE)
        assert state[("be_web", "n1:web2:80")].in_maint
        web = vhost_tags("web", "web.example")
        checked = [Check(tcp="127.0.0.1:32003")]
        model = build_routing(
            snapshot(
                [
                    instance("n1:web1:80", "web", 32001, web),
                    instance("n1:web2:80", "web", 32002, web),
                    instance("n1:web3:80", "web", 32003, web, checks=checked),
                ]
            )
        )
        plan = plan_runtime(render_haproxy(model, OPTIONS), state)
        assert plan.add == (
            "set server be_web/n1:web2:80 addr 127.0.0.1 port 32002",
            "set server be_web/n1:web2:80 state ready",
            "add server be_web/n1:web3:80 127.0.0.1:32003 check inter 10000 "
            "observe layer4 error-limit 1 on-error mark-down",
            "enable health be_web/n1:web3:80",
            "set server be_web/n1:web3:80 state ready",
        )
        assert plan.remove == (("be_web", "n1:gone:80"),)

    @pytest.mark.parametrize(
        ("command", "reply", "ok"),
        [
            ("add server b/s 1.2.3.4:80", "New server registered.\n", True),
            ("add server b/s 1.2.3.4:80", "Already exists a server with the same name.\n", False),
            ("del server b/s", "Server deleted.\n", True),
            ("del server b/s", "Server still has connections attached to it.\n", False),
            ("set server b/s addr 1.2.3.4 port 80", "IP changed from 'a' to 'b'\n", True),
            ("set server b/s state ready", "\n", True),
            ("enable health b/s", "No such server.\n", False),
        ],
    )
    def test_replies(self, command: str, reply: str, ok: bool) -> None:
        assert runtime_reply_ok(command, reply) is ok
