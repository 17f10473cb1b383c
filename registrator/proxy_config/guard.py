"""Timing and safety decisions of the writer, as pure functions of values and a clock reading.

- `debounce_due`: consul-template's quiescence (wait MIN:MAX). The first change after a render
  arms a MIN timer; each later change pushes it back by MIN, never past first change + MAX.
- `guard_removals`: a suspicious mass removal (every server of a backend, or more than a
  fraction of all servers, gone in one read) is refused until it persists across reads at least
  `confirm_after` seconds apart. Meanwhile additions and other changes still apply: the refused
  servers (and whole backends with their routers) are carried over from the last applied model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from registrator.proxy_config.model import Backend, Router, RoutingModel, Server

ServerKey = tuple[str, str, str]  # (protocol, backend, server name)


def debounce_due(
    first_change: float, last_change: float, wait_min: float, wait_max: float
) -> float:
    """When to render after changes at `first_change` .. `last_change` (monotonic seconds)."""
    return min(last_change + wait_min, first_change + wait_max)


@dataclass(frozen=True, slots=True)
class PendingRemoval:
    first_seen: float
    servers: frozenset[ServerKey]


@dataclass(frozen=True, slots=True)
class GuardDecision:
    model: RoutingModel  # what to apply
    pending: PendingRemoval | None  # a refused removal waiting for confirmation
    refused: tuple[ServerKey, ...] = ()  # servers kept although the catalog dropped them
    emptied: tuple[str, ...] = ()  # backends that would have lost every server
    fraction: float = 0.0  # share of all servers the desired model removes
    confirmed: bool = False  # a refused removal persisted and is applied now
    removed: int = 0  # servers the desired model drops


def _servers(model: RoutingModel) -> dict[ServerKey, Server]:
    return {(b.protocol, b.name, s.name): s for b in model.backends for s in b.servers}


def guard_removals(
    previous: RoutingModel | None,
    desired: RoutingModel,
    pending: PendingRemoval | None,
    *,
    now: float,
    fraction: float,
    confirm_after: float,
) -> GuardDecision:
    """Apply `desired`, or a version of it that keeps the servers of a suspicious removal."""
    if previous is None or fraction >= 1:
        return GuardDecision(desired, None)
    before = _servers(previous)
    after = _servers(desired)
    removed = frozenset(before.keys() - after.keys())
    emptied = tuple(
        sorted(
            b.name
            for b in previous.backends
            if b.servers
            and not ((nb := desired.backend(b.protocol, b.name)) is not None and nb.servers)
        )
    )
    share = len(removed) / len(before) if before else 0.0
    if not removed or (not emptied and share <= fraction):
        return GuardDecision(desired, None, fraction=share, removed=len(removed))
    if (
        pending is not None
        and pending.servers <= removed
        and now - pending.first_seen >= confirm_after
    ):
        return GuardDecision(
            desired, None, emptied=emptied, fraction=share, confirmed=True, removed=len(removed)
        )
    if pending is None or not pending.servers <= removed:
        pending = PendingRemoval(now, removed)
    kept = _keep(previous, desired, removed)
    return GuardDecision(
        kept, pending, tuple(sorted(removed)), emptied, share, removed=len(removed)
    )


def _keep(
    previous: RoutingModel, desired: RoutingModel, removed: frozenset[ServerKey]
) -> RoutingModel:
    backends: dict[tuple[str, str], Backend] = {b.key: b for b in desired.backends}
    routers: dict[tuple[str, str], Router] = {(r.protocol, r.name): r for r in desired.routers}
    for old in previous.backends:
        lost = [s for s in old.servers if (old.protocol, old.name, s.name) in removed]
        if not lost:
            continue
        current = backends.get(old.key)
        if current is None:
            backends[old.key] = replace(old, servers=tuple(sorted(lost)))
            for r in previous.routers:
                if (r.protocol, r.backend) == old.key:
                    routers.setdefault((r.protocol, r.name), r)
        else:
            merged = {s.name: s for s in (*current.servers, *lost)}
            backends[old.key] = replace(current, servers=tuple(sorted(merged.values())))
    return replace(
        desired,
        backends=tuple(backends[k] for k in sorted(backends)),
        routers=tuple(sorted(routers.values(), key=lambda r: (r.protocol, -r.priority, r.name))),
    )
