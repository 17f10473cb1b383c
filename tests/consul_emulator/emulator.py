"""The in-process API: start/stop the emulator, reach into its state, drive its clock."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from .acl import RuleSpec, accessor_id
from .app import Backend, EmulatorConfig, build_app
from .clock import Clock
from .hooks import Fault
from .views import agent_service_json, health_check_json

__all__ = ["ConsulEmulator", "ThreadedEmulator", "is_loopback", "running_emulator"]

log = logging.getLogger("consul_emulator")
T = TypeVar("T")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (the only hosts the emulator binds)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConsulEmulator:
    """A one-node Consul HTTP API on 127.0.0.1, for tests.

    ``await start(port=0)`` binds (0 = a free port), ``url``/``port`` tell where, ``await stop()``
    shuts everything down. ``restart_listener(down_for)`` closes the listening socket and every
    open connection, waits, and listens again on the same port with state kept, so clients see
    refused connections meanwhile. Time-driven behaviour (TTL expiry, reaping, blocking-query
    timeouts) follows a clock that runs in real time and jumps on :meth:`advance`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        node_name: str = "node1",
        datacenter: str = "dc1",
        advertise_addr: str = "127.0.0.1",
        acl_master_token: str | None = None,
        acl_tokens: Mapping[str, Sequence[RuleSpec]] | None = None,
        check_reap_interval: float = 30.0,
        dcsa_min: float = 60.0,
        default_query_time: float = 300.0,
        max_query_time: float = 600.0,
        include_consul_service: bool = True,
        node_id: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not is_loopback(host):
            raise ValueError(f"the emulator only listens on loopback, not {host!r}")
        self.host = host
        self.config = EmulatorConfig(
            node_name=node_name,
            datacenter=datacenter,
            advertise_addr=advertise_addr,
            node_id=node_id,
            include_consul_service=include_consul_service,
            check_reap_interval=check_reap_interval,
            dcsa_min=dcsa_min,
            default_query_time=default_query_time,
            max_query_time=max_query_time,
            acl_master_token=acl_master_token,
            acl_tokens={k: tuple(v) for k, v in (acl_tokens or {}).items()},
        )
        self.backend = Backend(self.config, clock)
        self.backend.restart_listener = self.restart_listener
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._timer: asyncio.Task[None] | None = None
        self._listener_lock = asyncio.Lock()

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator has not been started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._runner is not None

    async def start(self, port: int = 0) -> None:
        """Listen on ``host:port`` (``0`` picks a free port) and start the timer task."""
        if self._timer is not None:
            raise RuntimeError("the emulator is already running")
        await self._open_listener(port)
        self._timer = asyncio.get_running_loop().create_task(self._run_timers())

    async def stop(self) -> None:
        """Close the listener and all connections, stop the timer; state stays readable."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        for task in list(self.backend.background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.close_listener()

    async def close_listener(self) -> None:
        """Stop accepting connections and close open ones (blocking queries answer at once)."""
        async with self._listener_lock:
            runner, self._runner = self._runner, None
            if runner is None:
                return
            self.backend.draining = True
            self.backend.notify()
            try:
                await runner.cleanup()
            finally:
                self.backend.draining = False

    async def open_listener(self) -> None:
        """Listen again on the same port after :meth:`close_listener`."""
        await self._open_listener(self.port)

    async def restart_listener(self, down_for: float = 0.0) -> None:
        """Close the listener, stay down ``down_for`` real seconds, listen on the same port."""
        await self.close_listener()
        if down_for > 0:
            await asyncio.sleep(down_for)
        await self.open_listener()

    async def _open_listener(self, port: int) -> None:
        async with self._listener_lock:
            if self._runner is not None:
                return
            runner = web.AppRunner(build_app(self.backend), access_log=None, shutdown_timeout=2.0)
            await runner.setup()
            site = web.TCPSite(runner, self.host, port, reuse_address=True)
            try:
                await site.start()
            except BaseException:
                await runner.cleanup()
                raise
            self._runner = runner
            sockets = runner.addresses
            self._port = int(sockets[0][1])

    async def _run_timers(self) -> None:
        """Fire TTL expiries and reaper passes when due (real time; advance wakes it early)."""
        backend = self.backend
        while True:
            timeout: float | None
            try:
                backend.store.run_due()
                event = backend.current_event()
                deadline = backend.store.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - backend.clock.now())
            except Exception:
                log.exception("emulator timer pass failed")
                event, timeout = backend.current_event(), 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)

    async def __aenter__(self) -> ConsulEmulator:
        if self._timer is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- direct access for tests ------------------------------------------------------------------

    @property
    def node_name(self) -> str:
        return self.config.node_name

    @property
    def index(self) -> int:
        """The current raft index (what ``X-Consul-Index`` reports for a table that changed)."""
        return self.backend.store.index

    def services(self) -> dict[str, dict[str, Any]]:
        """What ``GET /v1/agent/services`` returns (no ACL filtering)."""
        store = self.backend.store
        return {
            sid: agent_service_json(svc, self.config.datacenter)
            for sid, svc in sorted(store.local_services.items())
        }

    def checks(self) -> dict[str, dict[str, Any]]:
        """What ``GET /v1/agent/checks`` returns (no ACL filtering)."""
        store = self.backend.store
        out: dict[str, dict[str, Any]] = {}
        for cid, local in sorted(store.local_checks.items()):
            svc = store.local_services.get(local.check.service_id)
            out[cid] = health_check_json(local.check, store.node_name, svc)
        return out

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward; due TTL expiries and reaper passes run at once."""
        self.backend.advance(seconds)

    def set_check_status(self, check_id: str, status: str, output: str | None = None) -> None:
        """Force a check's status (no TTL semantics); ``KeyError`` if the check is unknown."""
        if not self.backend.store.force_check_status(check_id, status, output):
            raise KeyError(check_id)

    def sync(self) -> None:
        """Run a full anti-entropy pass (reverts catalog edits of agent-owned services)."""
        self.backend.store.sync()

    def reset(self) -> None:
        """Forget all registrations, faults, logged requests and no-leader mode."""
        backend = self.backend
        backend.store.reset()
        backend.faults.clear()
        backend.requests.clear()
        backend.no_leader = False
        backend.notify()

    @property
    def no_leader(self) -> bool:
        return self.backend.no_leader

    @no_leader.setter
    def no_leader(self, value: bool) -> None:
        self.backend.no_leader = value
        self.backend.notify()

    def add_fault(
        self,
        path: str = "/v1/",
        *,
        status: int | None = 500,
        body: str = "injected fault",
        count: int | None = None,
        duration: float | None = None,
        delay: float = 0.0,
        method: str | None = None,
    ) -> Fault:
        """Make matching ``/v1`` requests fail with ``status`` (and/or wait ``delay`` seconds)."""
        until = None if duration is None else self.backend.clock.now() + duration
        return self.backend.faults.add(
            path=path,
            method=method,
            status=status,
            body=body,
            count=count,
            until=until,
            delay=delay,
        )

    def clear_faults(self) -> None:
        self.backend.faults.clear()

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Logged ``/v1`` requests after sequence number ``since`` (token values never kept)."""
        return [r.to_json() for r in self.backend.requests.entries(since)]

    def clear_requests(self) -> None:
        self.backend.requests.clear()

    @staticmethod
    def accessor_id(token: str) -> str:
        """The AccessorID that 403 texts name for a token secret."""
        return accessor_id(token)


@contextlib.asynccontextmanager
async def running_emulator(port: int = 0, **kwargs: Any) -> AsyncIterator[ConsulEmulator]:
    """``async with running_emulator(acl_master_token="root") as emu: ...``"""
    emulator = ConsulEmulator(**kwargs)
    await emulator.start(port)
    try:
        yield emulator
    finally:
        await emulator.stop()


class ThreadedEmulator:
    """A :class:`ConsulEmulator` on its own event loop in a background thread.

    For synchronous tests (a blocking client, a subprocess under test)::

        with ThreadedEmulator(acl_master_token="root") as consul:
            requests.get(consul.url + "/v1/agent/services")
            consul.call(lambda emu: emu.advance(90))

    Reach the emulator only through :meth:`call`, which runs a function on the loop's thread.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready: concurrent.futures.Future[ConsulEmulator] = concurrent.futures.Future()
        self.emulator: ConsulEmulator | None = None

    def start(self, port: int = 0, timeout: float = 10.0) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(port),), name="consul-emulator", daemon=True
        )
        self._thread.start()
        self.emulator = self._ready.result(timeout)

    async def _main(self, port: int) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            emulator = ConsulEmulator(**self._kwargs)
            await emulator.start(port)
        except BaseException as exc:
            self._ready.set_exception(exc)
            raise
        self._ready.set_result(emulator)
        try:
            await self._stop.wait()
        finally:
            await emulator.stop()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        self._thread = None

    def call(self, fn: Callable[[ConsulEmulator], T], timeout: float = 10.0) -> T:
        """Run ``fn(emulator)`` on the emulator's loop and return its result."""
        if self._loop is None or self.emulator is None:
            raise RuntimeError("the emulator is not running")
        emulator = self.emulator

        async def run() -> T:
            return fn(emulator)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    @property
    def url(self) -> str:
        return self.call(lambda emu: emu.url)

    @property
    def port(self) -> int:
        return self.call(lambda emu: emu.port)

    def __enter__(self) -> ThreadedEmulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
