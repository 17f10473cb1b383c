"""The register role: Docker events wake a level-triggered reconcile loop that makes the registry
hold exactly the services of the containers running now.

An event never carries state: it only marks a container dirty and wakes the loop. Each pass lists
the running containers, re-inspects the dirty and new ones, maps them (pure), reads what the
registry holds, plans the difference (pure) and applies it. A full resync (start-up, reconnect,
-resync, after a registry outage) re-inspects everything."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass

from registrator.backends import Backend
from registrator.backoff import Backoff
from registrator.docker_source import DockerSource, open_docker
from registrator.errors import BackendRejected, BackendUnavailable, DockerUnavailable
from registrator.logs import get_logger
from registrator.mapping import MappingPolicy, services_for
from registrator.metrics import Metrics
from registrator.model import Container, ServiceInstance, Skip
from registrator.netinfo import default_route_address
from registrator.reconcile import (
    exit_keeps_registration,
    id_owner,
    plan,
    ttl_check_id,
    with_ttl_check,
)
from registrator.settings import Settings

DEBOUNCE_S = 0.1  # a burst of events costs one pass per 100 ms; a lone event is handled at once
_INSPECT_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class _Seen:
    """A container as last inspected, and the services it yields under the current policy."""

    container: Container
    instances: tuple[ServiceInstance, ...]


class Registrar:
    def __init__(
        self, settings: Settings, backend: Backend, metrics: Metrics | None = None
    ) -> None:
        self._settings = settings
        self._backend = backend
        self._metrics = metrics or Metrics()
        self._log = get_logger(role="register")
        self._policy: MappingPolicy | None = None
        self._seen: dict[str, _Seen] = {}  # running containers by ID
        self._dirty: set[str] = set()
        self._full = True
        self._wake = asyncio.Event()
        self._ours: set[str] = set()  # service IDs this daemon registered or adopted
        self._rejected: dict[str, ServiceInstance] = {}  # 4xx: not retried until it changes
        self._kept: dict[str, str] = {}  # -deregister on-success: container name -> ID
        self._desired: dict[str, ServiceInstance] = {}
        self._docker_problem: str | None = "not connected yet"
        self._registry_problem: str | None = None
        for component in ("docker", "registry"):
            self._metrics.component_up.labels(component).set_function(
                functools.partial(self._up, component)
            )

    def _up(self, component: str) -> float:
        return float(self.health()[component] is None)

    def health(self) -> dict[str, str | None]:
        """Component -> None when it answers, else why not (the ops /health endpoint)."""
        return {"docker": self._docker_problem, "registry": self._registry_problem}

    @property
    def desired(self) -> Mapping[str, ServiceInstance]:
        return self._desired

    async def run(self) -> None:
        """Forever: connect to the engine, watch and reconcile; on any engine failure, back off,
        reconnect and resync."""
        backoff = Backoff(cap=5.0)  # a local socket: retrying often costs nothing
        while True:
            started = time.monotonic()
            try:
                async with open_docker() as docker:
                    await self._connect(docker)
                    await self._session(docker)
            except* DockerUnavailable as group:
                self._docker_problem = str(group.exceptions[0])
                if time.monotonic() - started > 30:
                    backoff.reset()
                delay = backoff.next()
                self._log.warning(
                    "docker_unavailable", error=str(group.exceptions[0]), retry_in_s=round(delay, 2)
                )
                await asyncio.sleep(delay)
            except* Exception as group:  # noqa: BLE001 - a bug must not end registration for good
                delay = backoff.next()
                self._log.error(
                    "register_role_crashed",
                    error=repr(group.exceptions[0]),
                    retry_in_s=round(delay, 2),
                    exc_info=group.exceptions[0],
                )
                await asyncio.sleep(delay)

    async def deregister_all(self) -> None:
        for sid in sorted(self._ours):
            try:
                await self._backend.deregister(sid)
                self._log.info("service_deregistered", service_id=sid, why="shutdown")
            except (BackendUnavailable, BackendRejected) as exc:
                self._log.warning("service_deregister_failed", service_id=sid, error=str(exc))

    async def _connect(self, docker: DockerSource) -> None:
        info = await docker.engine_info()
        host_address = self._settings.ip
        if host_address is None:
            try:
                host_address = await self._backend.node_address()
            except (BackendUnavailable, BackendRejected):
                host_address = None
        policy = MappingPolicy.from_settings(
            self._settings, info.name, host_address or default_route_address()
        )
        if self._policy is not None and policy != self._policy:
            self._log.info("mapping_policy_changed", node=policy.node)
        self._policy = policy
        self._backend.set_node(policy.node, policy.host_address)
        self._full = True
        self._docker_problem = None
        self._log.info(
            "docker_connected",
            engine=info.name,
            version=info.version,
            node=policy.node,
            host_address=policy.host_address,
        )

    async def _session(self, docker: DockerSource) -> None:
        # The engine replays events from `since`, so nothing between here and the first list is
        # lost even if the stream connects late; replayed events only mark containers dirty.
        since = time.time_ns() - 2_000_000_000
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch_events(docker, since))
            tg.create_task(self._reconcile_forever(docker))
            if self._settings.ttl:
                tg.create_task(self._refresh_ttl_forever())

    async def _watch_events(self, docker: DockerSource, since: int) -> None:
        self._log.info("docker_events_connected")
        async for event in docker.events(since):
            self._dirty.add(event.container_id)
            self._wake.set()
            self._metrics.docker_events.labels(event.action).inc()
            self._log.debug(
                "docker_event", action=event.action, container_id=event.container_id[:12]
            )

    async def _reconcile_forever(self, docker: DockerSource) -> None:
        loop = asyncio.get_running_loop()
        resync = float(self._settings.resync or 0)
        next_resync = loop.time() + resync if resync else float("inf")
        retry_at = float("inf")
        backoff = Backoff()
        last = float("-inf")
        self._wake.set()  # the first pass runs at once
        while True:
            deadline = min(next_resync, retry_at)
            if deadline > loop.time():
                with contextlib.suppress(TimeoutError):
                    timeout = None if deadline == float("inf") else deadline - loop.time()
                    await asyncio.wait_for(self._wake.wait(), timeout)
            now = loop.time()
            if now >= next_resync:
                next_resync = now + resync
                self._full = True
                self._rejected.clear()  # 4xx are retried once per resync, never in a loop
            if now >= retry_at:
                self._full = True
            if now - last < DEBOUNCE_S:
                await asyncio.sleep(DEBOUNCE_S - (now - last))
            self._wake.clear()
            last = loop.time()
            if await self._reconcile(docker):
                backoff.reset()
                retry_at = float("inf")
            else:
                retry_at = loop.time() + backoff.next()

    async def _reconcile(self, docker: DockerSource) -> bool:
        """One pass. False when the registry was unavailable (the caller retries with backoff).
        Docker errors propagate: the session ends and reconnects."""
        assert self._policy is not None
        started = time.perf_counter()
        full, self._full = self._full, False
        dirty, self._dirty = self._dirty, set()
        running = set(await docker.running_ids())
        if full:
            self._seen.clear()
        for cid in set(self._seen) - running:
            gone = self._seen.pop(cid)
            dirty.add(cid)
            self._log.debug("container_gone", container=gone.container.name)
        fresh = (dirty & running) | (running - set(self._seen))
        inspected = await self._inspect_all(docker, fresh | (dirty - running))
        for cid, container in inspected.items():
            if container is None or not container.running:
                self._note_exit(cid, container)
                continue
            self._kept.pop(container.name, None)
            self._seen[cid] = _Seen(container, self._instances(container))

        desired: dict[str, ServiceInstance] = {}
        for seen in self._seen.values():
            for inst in seen.instances:
                desired[inst.id] = inst
        self._desired = desired
        try:
            actual = await self._backend.services()
        except (BackendUnavailable, BackendRejected) as exc:
            self._registry_problem = str(exc)
            self._log.warning("registry_unavailable", error=str(exc))
            return False
        self._registry_problem = None
        if full and self._settings.deregister == "on-success":
            await self._find_kept(docker, actual)
        self._ours |= desired.keys() & actual.keys()
        todo = plan(
            desired,
            actual,
            node=self._policy.node,
            ours=self._ours,
            cleanup=self._settings.cleanup,
            keep_containers=self._kept,
        )
        ok, registered, deregistered, failed = await self._apply(todo.register, todo.deregister)
        elapsed = time.perf_counter() - started
        self._metrics.reconcile_seconds.observe(elapsed)
        self._metrics.registered.set(len(desired))
        level = "info" if (registered or deregistered or failed) else "debug"
        getattr(self._log, level)(
            "reconcile_done",
            full=full,
            containers=len(self._seen),
            desired=len(desired),
            registered=registered,
            deregistered=deregistered,
            kept=len(todo.kept),
            failed=failed,
            duration_ms=round(elapsed * 1000, 1),
        )
        return ok

    def _instances(self, container: Container) -> tuple[ServiceInstance, ...]:
        """The services of a freshly inspected container; logs why anything was left out."""
        assert self._policy is not None
        reason = self._not_eligible(container)
        if reason is not None:
            self._log_skip(container, Skip(container.name, reason[0], reason[1]))
            return ()
        mapped = services_for(container, self._policy)
        for skip in mapped.skipped:
            self._log_skip(container, skip)
        if self._settings.ttl:
            return tuple(with_ttl_check(i, self._settings.ttl) for i in mapped.instances)
        return mapped.instances

    def _not_eligible(self, container: Container) -> tuple[str, str] | None:
        if container.paused:
            return "paused", "paused containers cannot serve; registered again on unpause"
        if container.restarting:
            return "restarting", "the container is restarting"
        if self._settings.ignore_health or container.health is None:
            return None
        if container.health == "starting":
            return "health_starting", "waiting for the Docker HEALTHCHECK to report healthy"
        if container.health != "healthy":
            return "unhealthy", f"Docker HEALTHCHECK reports {container.health}"
        return None

    def _log_skip(self, container: Container, skip: Skip) -> None:
        self._metrics.skips.labels(skip.reason).inc()
        self._log.info(skip.event, container_id=container.short_id, **skip.as_log())

    def _note_exit(self, cid: str, container: Container | None) -> None:
        """-deregister on-success: remember containers whose registrations must stay."""
        for name, kept_id in list(self._kept.items()):
            if kept_id == cid:
                del self._kept[name]
        if (
            container is not None
            and self._settings.deregister == "on-success"
            and exit_keeps_registration(container)
        ):
            self._kept[container.name] = cid
            self._log.info(
                "container_exited_kept", container=container.name, exit_code=container.exit_code
            )

    async def _find_kept(self, docker: DockerSource, actual: Mapping[str, ServiceInstance]) -> None:
        """After a (re)start, find exited containers whose registrations on-success keeps."""
        exited = await docker.exited_names()
        names = {owner[1] for sid in actual if (owner := id_owner(sid)) is not None}
        candidates = {exited[n] for n in names & exited.keys()}
        for cid, container in (await self._inspect_all(docker, candidates)).items():
            self._note_exit(cid, container)

    async def _inspect_all(
        self, docker: DockerSource, ids: set[str]
    ) -> dict[str, Container | None]:
        gate = asyncio.Semaphore(_INSPECT_CONCURRENCY)

        async def one(cid: str) -> tuple[str, Container | None]:
            async with gate:
                try:
                    return cid, await docker.inspect(cid)
                except DockerUnavailable:
                    raise
                except Exception as exc:  # noqa: BLE001 - one bad container must not stop the rest
                    self._log.warning(
                        "container_skipped",
                        container_id=cid[:12],
                        reason="inspect_invalid",
                        detail=str(exc),
                    )
                    return cid, None

        return dict(await asyncio.gather(*(one(cid) for cid in sorted(ids))))

    async def _apply(
        self, register: tuple[ServiceInstance, ...], deregister: tuple[str, ...]
    ) -> tuple[bool, int, int, int]:
        """Register, then deregister. Stops at the first unavailable-registry error (the pass is
        retried with backoff); a 4xx skips that one service."""
        registered = deregistered = failed = 0
        for inst in register:
            if self._rejected.get(inst.id) == inst:
                continue
            outcome = await self._call(
                self._backend.register(inst), inst.id, "service_register_failed", registering=True
            )
            if outcome == "rejected":
                self._rejected[inst.id] = inst
            if outcome == "unavailable":
                return False, registered, deregistered, failed + 1
            if outcome != "ok":
                failed += 1
                continue
            registered += 1
            self._ours.add(inst.id)
            self._log.info(
                "service_registered",
                service_id=inst.id,
                service=inst.name,
                address=inst.address,
                port=inst.port,
            )
        for sid in deregister:
            outcome = await self._call(
                self._backend.deregister(sid), sid, "service_deregister_failed", registering=False
            )
            if outcome == "unavailable":
                return False, registered, deregistered, failed + 1
            if outcome != "ok":
                failed += 1
                continue
            deregistered += 1
            self._ours.discard(sid)
            self._log.info("service_deregistered", service_id=sid)
        return True, registered, deregistered, failed

    async def _call(
        self, call: Awaitable[None], sid: str, failed_event: str, *, registering: bool
    ) -> str:
        """One registry call: "ok", "rejected" (4xx, logged with the registry's text) or
        "unavailable", counted by result."""
        m = self._metrics
        counter = m.registrations if registering else m.deregistrations
        try:
            await call
        except BackendRejected as exc:
            counter.labels("rejected").inc()
            self._log.error(
                failed_event, service_id=sid, status=exc.status, error=exc.text, retryable=False
            )
            return "rejected"
        except BackendUnavailable as exc:
            counter.labels("unavailable").inc()
            self._registry_problem = str(exc)
            self._log.warning(failed_event, service_id=sid, error=str(exc), retryable=True)
            return "unavailable"
        counter.labels("ok").inc()
        return "ok"

    async def _refresh_ttl_forever(self) -> None:
        """Pass every TTL check of a running container every -ttl-refresh seconds."""
        while True:
            await asyncio.sleep(self._settings.ttl_refresh)
            for sid in sorted(self._ours & self._desired.keys()):
                try:
                    known = await self._backend.pass_ttl(ttl_check_id(sid))
                except (BackendUnavailable, BackendRejected) as exc:
                    self._log.warning("ttl_pass_failed", service_id=sid, error=str(exc))
                    break
                if not known:  # the agent lost it (restarted?): register again
                    self._full = True
                    self._wake.set()
