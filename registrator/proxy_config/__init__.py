"""Proxy configuration: HAProxy and Traefik files from the registry's catalog.

Pure core: `model` (snapshot -> RoutingModel), `guard` (debounce and removal-guard decisions),
`haproxy` and `traefik` (renderers, validation helpers, Runtime API plans). I/O shell: `files`
(staged atomic writes, backups, bind-mount fallback), `runtime` (HAProxy Runtime API client),
`writer` (the loop the daemon runs).
"""

from registrator.proxy_config.config import ProxyConfig, ProxyConfigError
from registrator.proxy_config.haproxy import HaproxyOptions, render_haproxy
from registrator.proxy_config.model import RoutingModel, build_routing
from registrator.proxy_config.traefik import check_traefik, render_traefik
from registrator.proxy_config.writer import (
    METRIC_KINDS,
    ProxyWriter,
    WriterStats,
    run_proxy_writer,
)

__all__ = [
    "METRIC_KINDS",
    "HaproxyOptions",
    "ProxyConfig",
    "ProxyConfigError",
    "ProxyWriter",
    "RoutingModel",
    "WriterStats",
    "build_routing",
    "check_traefik",
    "render_haproxy",
    "render_traefik",
    "run_proxy_writer",
]
