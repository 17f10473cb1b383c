"""Proxy writer benchmark: `.venv/bin/python bench/proxy_render.py` (needs HAProxy, not Docker).

For a catalog of 500 services x 3 instances (each service routed by a VIRTUAL_HOST hint and
health-checked over HTTP), prints from one run on this machine:
  - build the routing model, render HAProxy, render Traefik + its semantic checks (median of N);
  - one full HAProxy apply by the writer: render, stage, `haproxy -c`, rename, fsync, backups;
  - an unchanged re-apply (what every catalog read without a routing change costs);
  - a servers-only change planned for the Runtime API (parse `show servers state`, diff);
beside two anchors measured in the same run:
  - `haproxy -c` alone on the same file: the validation floor every writer pays;
  - a plain Jinja2 template rendering the same backends (the consul-template approach).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registrator.model import CatalogInstance, CatalogSnapshot, Check, ServiceInstance
from registrator.proxy_config import ProxyConfig, ProxyWriter, build_routing
from registrator.proxy_config.config import find_haproxy
from registrator.proxy_config.haproxy import (
    HaproxyOptions,
    parse_servers_state,
    plan_runtime,
    render_haproxy,
)
from registrator.proxy_config.traefik import check_traefik, render_traefik
from registrator.routing_hints import hint_tags

ANCHOR_TEMPLATE = """global
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe_http
    bind 127.0.0.1:18080
{% for svc in services %}    use_backend be_{{ svc.name }} if {{ acl_open }} -m str {{ svc.host }} }
{% endfor %}
{% for svc in services %}backend be_{{ svc.name }}
    balance roundrobin
    option httpchk GET /health
{% for i in svc.instances %}    server {{ i.id }} {{ i.address }}:{{ i.port }} check inter 10000
{% endfor %}{% endfor %}"""


def catalog(services: int, instances: int, version: int = 1, shift: int = 0) -> CatalogSnapshot:
    """`shift` replaces the first `shift` instances of every service by new ones."""
    out = []
    for s in range(services):
        name = f"svc{s:04d}"
        tags, _ = hint_tags({}, {"VIRTUAL_HOST": f"{name}.example"}, service_name=name, port=8080)
        for i in range(shift, instances + shift):
            port = 20000 + s * instances + i
            out.append(
                CatalogInstance(
                    node=f"node{i}",
                    node_address="127.0.0.1",
                    service=ServiceInstance(
                        id=f"node{i}:{name}-{i}:8080",
                        name=name,
                        address="127.0.0.1",
                        port=port,
                        tags=tags,
                        checks=(Check(http=f"http://127.0.0.1:{port}/health", interval="10s"),),
                    ),
                )
            )
    return CatalogSnapshot(tuple(out), (), version)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    samples, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000, result


def state_text(snapshot: CatalogSnapshot) -> str:
    """What `show servers state` prints for the rendered servers (for the runtime diff)."""
    lines = ["1", "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_port"]
    for inst in snapshot.instances:
        svc = inst.service
        lines.append(f"1 be_{svc.name} 1 {svc.id} {svc.address} 2 0 {svc.port}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    haproxy = find_haproxy()
    if haproxy is None:
        print("no haproxy binary: install HAProxy", file=sys.stderr)
        return 2
    snap = catalog(args.services, args.instances)
    options = HaproxyOptions("127.0.0.1", 18080, "/tmp/bench-admin.sock")  # noqa: S108

    model_ms, model = timed(lambda: build_routing(snap), args.repeat)
    hap_ms, render = timed(lambda: render_haproxy(model, options), args.repeat)
    trf_ms, _ = timed(lambda: check_traefik(render_traefik(model)[1]), args.repeat)
    services = [
        {
            "name": b.name,
            "host": f"{b.service}.example",
            "instances": [{"id": s.name, "address": s.address, "port": s.port} for s in b.servers],
        }
        for b in model.backends
    ]
    template = jinja2.Environment(autoescape=False).from_string(ANCHOR_TEMPLATE)  # noqa: S701
    acl = "{ req.hdr(host),field(1,:),lower"
    jinja_ms, _ = timed(lambda: template.render(services=services, acl_open=acl), args.repeat)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "haproxy.cfg"
        path.write_text(render.text)
        check_ms, _ = timed(
            lambda: subprocess.run(
                [haproxy, "-c", "-dr", "-f", str(path)], capture_output=True, check=True
            ),
            max(3, args.repeat // 2),
        )
        path.unlink()
        config = ProxyConfig(
            haproxy_config=path, bind_host="127.0.0.1", bind_port=18080, haproxy_bin=haproxy
        )

        same = catalog(args.services, args.instances, version=2)

        async def apply_twice() -> tuple[float, float, int]:
            writer = ProxyWriter(config)
            t0 = time.perf_counter()
            await writer.apply(snap)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            await writer.apply(same)
            again = time.perf_counter() - t0
            return first * 1000, again * 1000, writer.stats.writes

        apply_ms, unchanged_ms, writes = asyncio.run(apply_twice())
        size = path.stat().st_size

    # a servers-only change: every service loses one instance and gains another
    changed = catalog(args.services, args.instances, version=3, shift=1)
    state = state_text(snap)
    new_render = render_haproxy(build_routing(changed), options)
    runtime_ms, plan = timed(
        lambda: plan_runtime(new_render, parse_servers_state(state)), args.repeat
    )

    total = args.services * args.instances
    print(
        f"proxy writer, {args.services} services x {args.instances} instances ({total} servers), "
        f"config {size / 1024:.0f} KiB, median of {args.repeat}:"
    )
    print(f"  build routing model            {model_ms:8.1f} ms")
    print(
        f"  render HAProxy                 {hap_ms:8.1f} ms   "
        f"anchor Jinja2 template {jinja_ms:6.1f} ms"
        f"   ratio {hap_ms / jinja_ms:5.2f}"
    )
    print(f"  render Traefik + checks        {trf_ms:8.1f} ms")
    print(
        f"  full apply (render, stage, haproxy -c, rename, fsync)  {apply_ms:8.1f} ms   "
        f"anchor haproxy -c alone {check_ms:6.1f} ms   ratio {apply_ms / check_ms:5.2f}"
    )
    print(f"  unchanged re-apply (no write)  {unchanged_ms:8.1f} ms   (writes: {writes})")
    print(
        f"  runtime-API plan (state diff)  {runtime_ms:8.1f} ms   ({len(plan.add)} add/set "
        f"commands, {len(plan.remove)} removals)"
    )
    print(
        json.dumps(
            {
                "services": args.services,
                "instances": args.instances,
                "model_ms": round(model_ms, 2),
                "haproxy_render_ms": round(hap_ms, 2),
                "jinja_anchor_ms": round(jinja_ms, 2),
                "traefik_render_check_ms": round(trf_ms, 2),
                "apply_ms": round(apply_ms, 2),
                "haproxy_check_anchor_ms": round(check_ms, 2),
                "unchanged_ms": round(unchanged_ms, 2),
                "runtime_plan_ms": round(runtime_ms, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
