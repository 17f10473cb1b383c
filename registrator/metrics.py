"""Prometheus metrics: the only module that imports prometheus_client. One registry per daemon
(not the library's global one), rendered by the ops endpoint at /metrics.

Hot paths (the DNS answer path) keep plain integer counters of their own; a collector reads them
at scrape time, so answering a query never touches a metrics lock."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from registrator.model import CatalogSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name (without the prefix) -> (help, kind, label names); read by the callback collector below.
CountersSource = Callable[[], Mapping[str, float | Mapping[tuple[str, ...], float]]]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.docker_events = Counter(
            "registrator_docker_events",
            "Docker events received, by action",
            ["action"],
            registry=r,
        )
        self.registrations = Counter(
            "registrator_registrations",
            "Registration calls to the registry, by result (ok, rejected, unavailable)",
            ["result"],
            registry=r,
        )
        self.deregistrations = Counter(
            "registrator_deregistrations",
            "Deregistration calls, by result",
            ["result"],
            registry=r,
        )
        self.skips = Counter(
            "registrator_skips",
            "Containers and ports left out or adjusted, by reason",
            ["reason"],
            registry=r,
        )
        self.reconcile_seconds = Histogram(
            "registrator_reconcile_duration_seconds",
            "Duration of one reconcile pass",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.registered = Gauge(
            "registrator_registered_services",
            "Services this daemon wants registered",
            registry=r,
        )
        self.component_up = Gauge(
            "registrator_up",
            "Whether a component answers (docker, registry)",
            ["component"],
            registry=r,
        )
        self.snapshot_version = Gauge(
            "registrator_snapshot_version", "Version of the latest registry snapshot", registry=r
        )
        self._snapshot_at = time.monotonic()
        self.snapshot_age = Gauge(
            "registrator_snapshot_staleness_seconds",
            "Seconds since the registry snapshot last changed",
            registry=r,
        )
        self.snapshot_age.set_function(lambda: time.monotonic() - self._snapshot_at)
        self.instances = Gauge(
            "registrator_catalog_instances",
            "Instances in the registry snapshot, by aggregated health",
            ["status"],
            registry=r,
        )

    def snapshot_published(self, snapshot: CatalogSnapshot) -> None:
        self.snapshot_version.set(snapshot.version)
        self._snapshot_at = time.monotonic()
        counts = collections.Counter(i.status for i in snapshot.instances)
        for status in ("passing", "warning", "critical"):
            self.instances.labels(status).set(counts[status])

    def add_source(self, prefix: str, source: CountersSource, kinds: Mapping[str, str]) -> None:
        """Expose counters a component keeps itself: `source()` returns name -> value, or name ->
        {label values: value}; `kinds` maps name -> "counter"|"gauge" (label name after a colon,
        e.g. "counter:rcode")."""
        self.registry.register(_Callback(prefix, source, kinds))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Callback(Collector):
    def __init__(self, prefix: str, source: CountersSource, kinds: Mapping[str, str]) -> None:
        self._prefix = prefix
        self._source = source
        self._kinds = kinds

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        values = self._source()
        for name, kind_spec in self._kinds.items():
            kind, _, label = kind_spec.partition(":")
            full = f"{self._prefix}_{name}"
            family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            value = values.get(name, 0)
            if label and isinstance(value, Mapping):
                family = family_type(full, name.replace("_", " "), labels=[label])
                for labels, v in sorted(value.items()):
                    family.add_metric(list(labels), float(v))
            else:
                family = family_type(
                    full,
                    name.replace("_", " "),
                    value=float(value) if not isinstance(value, Mapping) else 0.0,
                )
            yield family
