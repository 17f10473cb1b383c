"""The proxy writer: catalog snapshots in, validated configuration files and reloads out (I/O
shell around the pure model, guard and renderers).

Loop:
  1. The first published snapshot is rendered at once (no initial wait); later changes are
     debounced (`wait_min:wait_max`, consul-template's quiescence).
  2. `build_routing` -> `guard_removals` (a suspicious mass removal is held back until it
     persists across reads) -> render HAProxy and/or Traefik.
  3. Bytes equal to the file on disk: nothing is written, nothing reloaded.
  4. Else stage a hidden temp file beside the destination, validate it (`haproxy -c -f`, or the
     Traefik semantic checks), rename it into place (in-place write for single-file bind
     mounts), fsync, keep backups.
  5. HAProxy: when only servers changed and a Runtime API socket is configured, apply the change
     there (add / set addr / drain -> wait -> maint -> del): no reload. Otherwise run the reload
     command, at most once per `min_reload_interval`. A failed reload puts the last-known-good
     file back and is retried with backoff.
Failures never end the loop: they are logged, counted in `stats`, and the last good file stays.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from registrator.broadcast import Latest
from registrator.logs import get_logger
from registrator.model import CatalogSnapshot
from registrator.proxy_config import files
from registrator.proxy_config.config import ProxyConfig
from registrator.proxy_config.guard import PendingRemoval, debounce_due, guard_removals
from registrator.proxy_config.haproxy import (
    HaproxyOptions,
    HaproxyRender,
    parse_servers_state,
    parse_stat_sessions,
    plan_runtime,
    render_haproxy,
    render_template,
    runtime_reply_ok,
    servers_only_change,
)
from registrator.proxy_config.model import RoutingModel, build_routing
from registrator.proxy_config.runtime import RuntimeApi, RuntimeApiError
from registrator.proxy_config.traefik import check_traefik, render_traefik

MAX_RETRY_S = 30.0
DRAIN_POLL_S = 0.05
_OUTPUT_LIMIT = 4000


@dataclass(slots=True)
class WriterStats:
    """Counters for the ops endpoint (plain ints, read without locking)."""

    renders: int = 0  # snapshots turned into configuration
    writes: int = 0  # files replaced
    unchanged: int = 0  # renders identical to the file: nothing written
    reloads: int = 0  # successful reload commands
    reload_failures: int = 0
    validation_failures: int = 0  # candidates refused by haproxy -c or the Traefik checks
    write_failures: int = 0
    runtime_applies: int = 0  # server changes applied through the Runtime API
    runtime_commands: int = 0
    runtime_failures: int = 0
    removals_refused: int = 0  # suspicious removals held back
    deferred: int = 0  # reloads postponed by the minimum reload interval
    failures: int = 0  # any of the failures above
    failing: int = 0  # 1 while the last pass failed: the files hold an older, good state
    last_error: str | None = None
    last_applied_version: int = 0  # the snapshot version last applied everywhere

    def counters(self) -> dict[str, float]:
        """Name -> value, for `Metrics.add_source("registrator_proxy", ..., METRIC_KINDS)`."""
        return {name: float(getattr(self, name)) for name in METRIC_KINDS}


METRIC_KINDS: dict[str, str] = {
    **{
        name: "counter"
        for name in (
            "renders",
            "writes",
            "unchanged",
            "reloads",
            "reload_failures",
            "validation_failures",
            "write_failures",
            "runtime_applies",
            "runtime_commands",
            "runtime_failures",
            "removals_refused",
            "deferred",
            "failures",
        )
    },
    "failing": "gauge",
    "last_applied_version": "gauge",
}


class _Deferred(Exception):
    def __init__(self, until: float) -> None:
        self.until = until


class ProxyWriter:
    def __init__(self, config: ProxyConfig, *, clock: Callable[[], float] | None = None) -> None:
        self.config = config
        self.stats = WriterStats()
        self.log = get_logger(component="proxy")
        self._clock = clock
        self._decided: RoutingModel | None = None
        self._pending: PendingRemoval | None = None
        self._known_problems: frozenset[str] = frozenset()
        self._retry_at: float | None = None
        self._failures_in_row = 0
        self._last_reload = -math.inf
        # HAProxy target state: what the file holds and what HAProxy runs
        self._hap_text: str | None = None
        self._hap_model: RoutingModel | None = None
        self._hap_render: HaproxyRender | None = None
        self._hap_rejected: str | None = None
        self._runtime = (
            RuntimeApi(config.haproxy_socket) if config.haproxy_socket is not None else None
        )
        self._options = HaproxyOptions(
            bind_host=config.bind_host,
            bind_port=config.bind_port,
            socket=str(config.haproxy_socket) if config.haproxy_socket else None,
        )
        self._trf_text: str | None = None
        self._trf_rejected: str | None = None

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    # -----------------------------------------------------------------------------------------
    # The loop

    async def run(self, snapshots: Latest[CatalogSnapshot]) -> None:
        """Run until cancelled."""
        cfg = self.config
        if cfg.haproxy_config is not None:
            raw = await asyncio.to_thread(files.read_bytes, cfg.haproxy_config)
            self._hap_text = raw.decode(errors="replace") if raw is not None else None
        if cfg.traefik_config is not None:
            raw = await asyncio.to_thread(files.read_bytes, cfg.traefik_config)
            self._trf_text = raw.decode(errors="replace") if raw is not None else None
        self.log.info(
            "proxy_writer_started",
            haproxy=str(cfg.haproxy_config) if cfg.haproxy_config else None,
            traefik=str(cfg.traefik_config) if cfg.traefik_config else None,
            runtime_api=str(cfg.haproxy_socket) if cfg.haproxy_socket else None,
            wait=f"{cfg.wait_min}:{cfg.wait_max}",
        )
        seen = snapshots.version
        if seen == 0:  # nothing published yet: never render the empty placeholder
            seen, _ = await snapshots.wait_newer(0)
        while True:
            seen, snapshot = snapshots.version, snapshots.get()
            try:
                wake = await self.apply(snapshot)
            except Exception as exc:  # one bad pass must not end the writer
                self._fail("write_failures", repr(exc))
                self.stats.failing = 1
                self.log.error("proxy_writer_pass_failed", error=repr(exc), exc_info=True)
                wake = self._now() + MAX_RETRY_S
            changed = await self._wait(snapshots, seen, wake)
            if changed is None:
                continue  # a timer: re-read the same catalog (removal confirmation, retry)
            seen = changed
            first = last = self._now()
            while True:
                due = debounce_due(first, last, cfg.wait_min, cfg.wait_max)
                changed = await self._wait(snapshots, seen, due)
                if changed is None:
                    break
                seen, last = changed, self._now()

    async def _wait(
        self, snapshots: Latest[CatalogSnapshot], seen: int, until: float | None
    ) -> int | None:
        """The newer version, or None when `until` (loop time) came first."""
        if until is None:
            version, _ = await snapshots.wait_newer(seen)
            return version
        delay = until - self._now()
        if delay <= 0:
            return snapshots.version if snapshots.version > seen else None
        try:
            async with asyncio.timeout(delay):
                version, _ = await snapshots.wait_newer(seen)
                return version
        except TimeoutError:
            return None

    # -----------------------------------------------------------------------------------------
    # One pass

    async def apply(self, snapshot: CatalogSnapshot) -> float | None:
        """Render and apply `snapshot`; the loop time at which to look again, if any."""
        cfg = self.config
        now = self._now()
        desired = build_routing(snapshot)
        decision = guard_removals(
            self._decided,
            desired,
            self._pending,
            now=now,
            fraction=cfg.removal_guard,
            confirm_after=cfg.removal_confirm_after,
        )
        if decision.refused and (self._pending is None or self._pending != decision.pending):
            self.stats.removals_refused += 1
            self.log.warning(
                "proxy_removal_refused",
                servers=len(decision.refused),
                fraction=round(decision.fraction, 3),
                emptied=list(decision.emptied),
                confirm_after_s=cfg.removal_confirm_after,
            )
        if decision.confirmed:
            self.log.warning(
                "proxy_removal_confirmed",
                servers=decision.removed,
                emptied=list(decision.emptied),
            )
        self._pending = decision.pending
        self._decided = model = decision.model
        self.stats.renders += 1

        problems: list[str] = list(model.problems)
        wake: list[float] = []
        ok = True
        if cfg.haproxy_config is not None:
            try:
                ok = await self._apply_haproxy(cfg.haproxy_config, model, problems) and ok
            except _Deferred as deferred:
                wake.append(deferred.until)
        if cfg.traefik_config is not None:
            ok = await self._apply_traefik(cfg.traefik_config, model, problems) and ok
        self._report_problems(problems)
        self.stats.failing = 0 if ok else 1
        if ok:
            self._failures_in_row = 0
            self._retry_at = None
            if not wake:
                self.stats.last_applied_version = snapshot.version
        else:
            self._failures_in_row += 1
            delay = min(
                MAX_RETRY_S, max(1.0, cfg.min_reload_interval) * 2 ** (self._failures_in_row - 1)
            )
            self._retry_at = self._now() + delay
            wake.append(self._retry_at)
        if self._pending is not None:
            wake.append(self._pending.first_seen + cfg.removal_confirm_after + 0.01)
        return min(wake) if wake else None

    def _report_problems(self, problems: list[str]) -> None:
        current = frozenset(problems)
        for problem in sorted(current - self._known_problems):
            self.log.warning("proxy_route_skipped", problem=problem)
        self._known_problems = current

    def _fail(self, counter: str, error: str) -> None:
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        self.stats.failures += 1
        self.stats.last_error = error[:_OUTPUT_LIMIT]

    # -----------------------------------------------------------------------------------------
    # HAProxy

    def _render_haproxy(self, model: RoutingModel) -> HaproxyRender:
        if self.config.haproxy_template is not None:
            return render_template(self.config.haproxy_template, model, self._options)
        return render_haproxy(model, self._options)

    async def _apply_haproxy(self, path: Path, model: RoutingModel, problems: list[str]) -> bool:
        cfg = self.config
        try:
            render = self._render_haproxy(model)
        except Exception as exc:  # noqa: BLE001 (a user template can raise anything)
            self._fail("validation_failures", f"template: {exc!r}")
            self.log.error(
                "proxy_config_invalid", target="haproxy", path=str(path), error=repr(exc)
            )
            return False
        problems.extend(render.problems)
        text = render.text
        if text == self._hap_text:
            self.stats.unchanged += 1
            self.log.debug("proxy_config_unchanged", target="haproxy", path=str(path))
            first = self._hap_model is None
            self._hap_model, self._hap_render = model, render
            if first and self._runtime is not None:
                try:  # HAProxy may run an older state than the file (a crash of ours)
                    await self._runtime_apply(render)
                except RuntimeApiError as exc:
                    self.log.debug("proxy_runtime_api_unavailable", error=str(exc))
            return True
        if text == self._hap_rejected:
            return False  # the same candidate failed validation already
        runtime = (
            self._runtime is not None
            and cfg.haproxy_template is None
            and servers_only_change(self._hap_model, model, self._hap_render, render)
        )
        reload_due = self._last_reload + cfg.min_reload_interval
        if not runtime and cfg.haproxy_reload and self._now() < reload_due:
            self.stats.deferred += 1
            self.log.debug("proxy_reload_deferred", until_s=round(reload_due - self._now(), 3))
            raise _Deferred(reload_due)

        data = text.encode()
        try:
            tmp = await asyncio.to_thread(files.stage, path, data)
        except OSError as exc:
            self._fail("write_failures", repr(exc))
            self.log.error(
                "proxy_config_write_failed", target="haproxy", path=str(path), error=repr(exc)
            )
            return False
        rc, output = await self._run(
            [cfg.haproxy_bin, "-c", "-dr", "-f", str(tmp)], cfg.command_timeout
        )
        if rc != 0:
            await asyncio.to_thread(files.discard, tmp)
            self._hap_rejected = text
            self._fail("validation_failures", output)
            self.log.error(
                "proxy_config_invalid",
                target="haproxy",
                path=str(path),
                rc=rc,
                stderr=output[-_OUTPUT_LIMIT:],
            )
            return False
        previous = self._hap_text
        try:
            method = await asyncio.to_thread(files.commit, tmp, path, backups=cfg.backups)
        except OSError as exc:
            self._fail("write_failures", repr(exc))
            self.log.error(
                "proxy_config_write_failed", target="haproxy", path=str(path), error=repr(exc)
            )
            return False
        self._hap_text = text
        self.stats.writes += 1
        self.log.info(
            "proxy_config_written",
            target="haproxy",
            path=str(path),
            bytes=len(data),
            method=method,
            backends=len(render.backends),
            servers=sum(len(b.servers) for b in render.backends.values()),
            apply="runtime_api" if runtime else ("reload" if cfg.haproxy_reload else "none"),
        )
        if runtime:
            try:
                await self._runtime_apply(render)
            except RuntimeApiError as exc:
                self._fail("runtime_failures", str(exc))
                self.log.warning("proxy_runtime_api_failed", error=str(exc), fallback="reload")
            else:
                self._hap_model, self._hap_render = model, render
                return True
        if cfg.haproxy_reload:
            ok = await self._reload(path, previous)
            if not ok:
                return False
        self._hap_model, self._hap_render = model, render
        return True

    async def _reload(self, path: Path, previous: str | None) -> bool:
        cfg = self.config
        started = self._now()
        command = cfg.haproxy_reload or "true"
        rc, output = await self._run(["/bin/sh", "-c", command], cfg.command_timeout)
        self._last_reload = self._now()
        if rc == 0:
            self.stats.reloads += 1
            self.log.info(
                "proxy_reloaded",
                path=str(path),
                duration_ms=round((self._now() - started) * 1000, 1),
            )
            return True
        self._fail("reload_failures", output)
        self.log.error(
            "proxy_reload_failed",
            path=str(path),
            rc=rc,
            output=output[-_OUTPUT_LIMIT:],
            restored=previous is not None,
        )
        if previous is not None:
            try:
                await asyncio.to_thread(files.write_file, path, previous.encode())
            except OSError as exc:
                self.log.error("proxy_config_restore_failed", path=str(path), error=repr(exc))
        self._hap_text = previous
        self._hap_model = self._hap_render = None
        return False

    async def _runtime_apply(self, render: HaproxyRender) -> None:
        api = self._runtime
        if api is None:
            return
        before = api.commands
        state = parse_servers_state(await api.command("show servers state"))
        plan = plan_runtime(render, state)
        if plan.empty:
            return
        for command in plan.add:
            reply = await api.command(command)
            if not runtime_reply_ok(command, reply):
                raise RuntimeApiError(f"{command!r}: {reply.strip()[:500]}")
        deleted = 0
        if plan.remove:
            for backend, server in plan.remove:
                await api.command(f"set server {backend}/{server} state drain")
            await self._wait_drained(api, plan.remove)
            for backend, server in plan.remove:
                await api.command(f"set server {backend}/{server} state maint")
                reply = await api.command(f"del server {backend}/{server}")
                if runtime_reply_ok("del server", reply):
                    deleted += 1
                else:  # in maintenance it takes no traffic; the next pass or reload removes it
                    self.log.info(
                        "proxy_server_delete_deferred",
                        backend=backend,
                        server=server,
                        reply=reply.strip()[:200],
                    )
        self.stats.runtime_applies += 1
        self.stats.runtime_commands += api.commands - before
        self.log.info(
            "proxy_runtime_api_applied",
            added=plan.added,
            updated=plan.updated,
            removed=len(plan.remove),
            deleted=deleted,
            commands=api.commands - before,
        )

    async def _wait_drained(self, api: RuntimeApi, servers: tuple[tuple[str, str], ...]) -> None:
        deadline = self._now() + self.config.drain_timeout
        while True:
            busy = parse_stat_sessions(await api.command("show stat -1 4 -1"))
            remaining = [s for s in servers if busy.get(s, 0) > 0]
            if not remaining:
                return
            if self._now() >= deadline:
                self.log.warning("proxy_drain_timeout", servers=[f"{b}/{s}" for b, s in remaining])
                return
            await asyncio.sleep(DRAIN_POLL_S)

    # -----------------------------------------------------------------------------------------
    # Traefik

    async def _apply_traefik(self, path: Path, model: RoutingModel, problems: list[str]) -> bool:
        text, doc, render_problems = render_traefik(model)
        problems.extend(render_problems)
        if text == self._trf_text:
            self.stats.unchanged += 1
            self.log.debug("proxy_config_unchanged", target="traefik", path=str(path))
            return True
        if text == self._trf_rejected:
            return False
        invalid = check_traefik(doc)
        if invalid:
            self._trf_rejected = text
            self._fail("validation_failures", "; ".join(invalid))
            self.log.error(
                "proxy_config_invalid", target="traefik", path=str(path), problems=invalid[:20]
            )
            return False
        data = text.encode()
        try:
            tmp = await asyncio.to_thread(files.stage, path, data)
            method = await asyncio.to_thread(files.commit, tmp, path, backups=self.config.backups)
        except OSError as exc:
            self._fail("write_failures", repr(exc))
            self.log.error(
                "proxy_config_write_failed", target="traefik", path=str(path), error=repr(exc)
            )
            return False
        self._trf_text = text
        self.stats.writes += 1
        self.log.info(
            "proxy_config_written",
            target="traefik",
            path=str(path),
            bytes=len(data),
            method=method,
            routers=len(doc.get("http", {}).get("routers", {}))
            + len(doc.get("tcp", {}).get("routers", {})),
        )
        return True

    # -----------------------------------------------------------------------------------------

    @staticmethod
    async def _run(argv: list[str], limit_s: float) -> tuple[int, str]:
        """Run a command; (exit status, combined output). -1 on a time-out."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            return -1, f"cannot run {argv[0]}: {exc}"
        try:
            async with asyncio.timeout(limit_s):
                out, _ = await proc.communicate()
        except TimeoutError:
            return -1, f"{argv[0]} did not finish within {limit_s}s"
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        return proc.returncode or 0, out.decode(errors="replace")


async def run_proxy_writer(config: ProxyConfig, snapshots: Latest[CatalogSnapshot]) -> None:
    """Write and apply proxy configuration from `snapshots` until cancelled."""
    await ProxyWriter(config).run(snapshots)
