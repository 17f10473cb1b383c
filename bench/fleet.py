"""Fleet benchmark: `.venv/bin/python bench/fleet.py [--hosts 10,50,100]` (needs a Docker engine;
about fifteen minutes for the default sizes on two cores). Findings: docs/scaling.md.

Simulates N hosts against one Consul (the emulator, in a child process that counts requests and
response bytes by endpoint, and the blocking queries in progress):

  - N registering daemons, each with its own `--node hostK`, all reading the same Docker engine:
    every "host" registers the M containers running there, as `hostK:<container>:8080`, through
    the real Consul backend. Every daemon also runs the catalog watcher that feeds DNS, the proxy
    and /v1/catalog (one blocking query on /v1/catalog/services, one per service name on
    /v1/health/service/<name>);
  - W more daemons with `--no-register` (edge hosts serving DNS / writing proxy configuration).

Phases: start-up (hosts join in batches until every snapshot holds all N x M instances); at rest
(nothing changes); single changes (one instance appears on one host, then goes, R times); waves
(a container starts, then stops: every host registers, then deregisters, one more instance of a
service, a fleet-wide deploy).

Reports, per N: requests per host by endpoint group (agent writes, agent reads, the watcher's
catalog/services and health/service), the blocking queries held open at rest, per-event watcher
responses and bytes per daemon, and convergence: from a change until a daemon's /v1/catalog
snapshot shows it, p50 and p99 over the probed daemons (all edge daemons and a sample of hosts).
Resolution: one polling sweep (reported).

The emulator's single agent holds every host's services, so /v1/agent/services answers grow with
N x M here, where a real agent holds only its own host's: the agent-endpoint byte counts are
pessimistic, the request counts are not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.docker_support import ContainerFactory, build_busybox_image, wait_until
from tests.integration.processes import REPO, Daemon, free_port

PORTS = {"8080/tcp": ("127.0.0.1", None)}
MAX_HOSTS = 300  # each daemon is a Python process of ~40 MB
_ENDPOINT = re.compile(
    r"^(/v1/(?:health/service|catalog/service|agent/service/deregister|agent/check/pass"
    r"|agent/check/update|agent/service))/[^/]+$"
)


# --------------------------------------------------------------------------------------------
# The emulator child: counts requests, tracks open blocking queries


def endpoint_of(method: str, path: str, query: dict[str, list[str]]) -> str:
    m = _ENDPOINT.match(path)
    name = f"{m.group(1)}/:x" if m and not path.endswith("/register") else path
    blocking = (query.get("index") or ["0"])[-1] not in ("", "0")
    return f"{method} {name}{' (blocking)' if blocking else ''}"


def serve_emulator(port: int, stats_port: int) -> None:
    """`bench/fleet.py --serve-emulator PORT STATS_PORT`: the emulator, and /counts beside it:
    requests, response bytes and requests in progress, by endpoint."""
    import uvloop
    from aiohttp import web

    from tests.consul_emulator import emulator as emulator_module

    counts: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    in_progress: Counter[str] = Counter()

    @web.middleware
    async def count(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        query = {k: request.query.getall(k) for k in request.query}
        key = endpoint_of(request.method, request.path, query)
        counts[key] += 1
        in_progress[key] += 1
        try:
            response = await handler(request)
        finally:
            in_progress[key] -= 1
        if isinstance(response, web.Response) and isinstance(response.body, bytes):
            sent[key] += len(response.body)
        return response

    # The emulator builds its application when it starts listening: add the counter to it.
    build_app = emulator_module.build_app  # type: ignore[attr-defined]

    def counting_app(backend: Any) -> web.Application:
        app: web.Application = build_app(backend)
        app.middlewares.append(count)
        return app

    emulator_module.build_app = counting_app  # type: ignore[attr-defined]

    async def main() -> None:
        emulator = emulator_module.ConsulEmulator()

        async def get_counts(_: web.Request) -> web.Response:
            still_open = {k: v for k, v in in_progress.items() if v}
            return web.json_response({"counts": counts, "bytes": sent, "open": still_open})

        app = web.Application()
        app.router.add_get("/counts", get_counts)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", stats_port).start()
        await emulator.start(port)
        try:
            await asyncio.Event().wait()
        finally:
            await emulator.stop()
            await runner.cleanup()

    uvloop.run(main())


@dataclass
class EmulatorProcess:
    log_path: Path
    port: int = field(default_factory=lambda: quiet_port())
    stats_port: int = field(default_factory=lambda: quiet_port())
    proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"consul://127.0.0.1:{self.port}"

    def start(self) -> EmulatorProcess:
        log = self.log_path.open("ab")
        cmd = [sys.executable, __file__, "--serve-emulator", str(self.port), str(self.stats_port)]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        log.close()
        wait_until(
            lambda: requests.get(f"http://127.0.0.1:{self.port}/v1/status/leader", timeout=5).ok,
            timeout=30,
            what="the emulator",
            ignore=(requests.ConnectionError,),
        )
        return self

    def stats(self) -> Stats:
        body = requests.get(f"http://127.0.0.1:{self.stats_port}/counts", timeout=60).json()
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / 100  # utime + stime, USER_HZ = 100
        counts, sent, still_open = (Counter(body[k]) for k in ("counts", "bytes", "open"))
        return Stats(counts, sent, still_open, cpu, time.monotonic())

    def put(self, path: str, body: dict[str, Any] | None = None) -> None:
        url = f"http://127.0.0.1:{self.port}{path}"
        requests.put(url, json=body, timeout=60).raise_for_status()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def quiet(emulator: EmulatorProcess, seconds: float, timeout: float) -> None:
    """Return once no request has reached the emulator for `seconds` (or at the deadline)."""
    deadline = time.monotonic() + timeout
    last = sum(emulator.stats().counts.values())
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < seconds and time.monotonic() < deadline:
        time.sleep(0.2)
        now = sum(emulator.stats().counts.values())  # the stats endpoint counts nothing
        if now != last:
            last, quiet_since = now, time.monotonic()


@dataclass(frozen=True)
class Stats:
    counts: Counter[str]
    bytes: Counter[str]
    open: Counter[str]
    cpu_s: float
    at: float

    def since(self, before: Stats) -> Phase:
        def delta(now: Counter[str], then: Counter[str]) -> Counter[str]:
            out = Counter(now)
            out.subtract(then)
            return +out

        return Phase(
            delta(self.counts, before.counts),
            delta(self.bytes, before.bytes),
            self.cpu_s - before.cpu_s,
            self.at - before.at,
        )


# --------------------------------------------------------------------------------------------
# The fleet


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def catalog_count(d: Daemon, needle: bytes) -> int:
    return d.get("/v1/catalog").content.count(needle)


def converge(
    daemons: Sequence[Daemon],
    needle: bytes,
    want: int,
    t0: float,
    timeout: float,
    pause: float = 0.0,
) -> tuple[list[float], list[float]]:
    """Poll every daemon's snapshot until `needle` occurs `want` times in each. Returns the
    seconds from t0 at which each daemon got there, and the duration of each polling sweep.
    Every probe makes a daemon serialise its whole snapshot: `pause` between sweeps leaves the
    CPU to the fleet when resolution does not matter."""
    pending = dict(enumerate(daemons))
    seen: dict[int, int] = {}
    reached: dict[int, float] = {}
    sweeps: list[float] = []
    deadline = time.monotonic() + timeout

    def probe(item: tuple[int, Daemon]) -> tuple[int, int, float]:
        i, d = item
        n = catalog_count(d, needle)
        return i, n, time.monotonic()

    with ThreadPoolExecutor(16) as pool:
        while pending:
            if time.monotonic() > deadline:
                counts = Counter(seen[i] for i in pending)
                raise TimeoutError(
                    f"{len(pending)} of {len(daemons)} daemons did not see {want} x {needle!r} "
                    f"within {timeout:.0f}s; they see (count: daemons) {dict(counts)}; "
                    f"logs: {pending[min(pending)].log_path.parent}"
                )
            started = time.monotonic()
            for i, n, at in pool.map(probe, list(pending.items())):
                seen[i] = n
                if n == want:
                    reached[i] = at - t0
                    del pending[i]
            sweeps.append(time.monotonic() - started)
            if pending and pause:
                time.sleep(pause)  # polling interval, bounded by the deadline above
    return [reached[i] for i in sorted(reached)], sweeps


@dataclass
class Phase:
    requests: Counter[str]
    bytes: Counter[str]  # response bodies
    cpu_s: float  # the emulator's
    wall_s: float


@dataclass
class FleetResult:
    hosts: int
    services: int
    watchers: int
    startup: Phase
    idle: Phase
    single: Phase
    single_events: int
    single_s: list[float]  # register and deregister convergence of one instance, seconds
    waves: Phase
    wave_events: int
    open_at_rest: Counter[str]
    register_s: list[float]
    deregister_s: list[float]
    sweep_s: list[float]
    rss_mb: float
    watch_failures: Counter[str]  # consul_watch_failed warnings in the daemons' logs, by error

    @property
    def daemons(self) -> int:
        return self.hosts + self.watchers


def quiet_port() -> int:
    """A free port below the kernel's ephemeral range: with a hundred processes opening
    connections, a port picked from that range (free_port) can be taken by someone's outgoing
    connection, or listener, before the daemon binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


class FleetDaemon(Daemon):
    """A daemon whose ops port is checked to be its own once it answers."""

    def __init__(self, log_path: Path, *args: str) -> None:
        super().__init__(log_path, *args)
        self.http_port = quiet_port()

    def wait_healthy(self, timeout: float = 30) -> None:
        super().wait_healthy(timeout)
        assert self.proc is not None
        listeners = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{self.http_port}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if f"pid={self.proc.pid}," not in listeners:
            raise RuntimeError(f"port {self.http_port} answers, but not for {self.command}")


@contextlib.contextmanager
def daemons_running(ds: list[Daemon]) -> Iterator[list[Daemon]]:
    try:
        yield ds
    finally:
        for d in ds:
            d.kill9()


def start_batch(ds: Sequence[Daemon], timeout: float) -> None:
    for d in ds:
        d.start()
    for d in ds:
        d.wait_healthy(timeout=timeout)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_fleet(
    client: docker.DockerClient, image: str, n: int, args: argparse.Namespace, tmp: Path
) -> FleetResult:
    emulator = EmulatorProcess(tmp / f"emulator-{n}.log").start()
    # -explicit: only containers with SERVICE_NAME, so that containers other processes start on
    # the same engine (tests running alongside) disturb the figures less
    common = ("-ip", "127.0.0.1", "-explicit", "--log-level", "warning", "--log-format", "json")
    try:
        with ContainerFactory(client) as containers, daemons_running([]) as ds:
            for k in range(args.services):
                env = {"SERVICE_NAME": f"fleet-{k}"}
                containers.run(image, ["sleep", "3600"], ports=PORTS, environment=env)
            uri = emulator.uri
            # 1. Start-up: hosts join in batches, until every snapshot holds all instances.
            before = emulator.stats()
            t0 = time.monotonic()
            for first in range(0, n, args.batch):
                batch = [
                    FleetDaemon(tmp / f"n{n}-host{k}.log", "--node", f"host{k}", *common, uri)
                    for k in range(first, min(n, first + args.batch))
                ]
                ds.extend(batch)
                start_batch(batch, timeout=args.timeout)
            converge(ds, b'"Name": "fleet-', n * args.services, t0, args.timeout, pause=1.0)
            startup = emulator.stats().since(before)

            # 2. Edge hosts: no Docker, the watcher only.
            watchers = [
                FleetDaemon(tmp / f"n{n}-edge{k}.log", "--no-register", *common, uri)
                for k in range(args.watchers)
            ]
            ds.extend(watchers)
            start_batch(watchers, timeout=args.timeout)
            converge(watchers, b'"Name": "fleet-', n * args.services, t0, args.timeout, pause=1.0)

            # 3. Idle: nothing changes; only blocking queries that time out come back. The tail
            # of start-up (queries re-issued after the watchers' settle pause) is not rest.
            quiet(emulator, seconds=2.0, timeout=args.timeout)
            before = emulator.stats()
            time.sleep(args.idle)  # a measuring window, not a wait for a condition
            after = emulator.stats()
            idle = after.since(before)
            open_at_rest = after.open

            # Convergence is watched on every edge daemon and a sample of hosts (probing costs the
            # fleet CPU: each probe serialises a whole snapshot).
            probed = [*watchers, *ds[: max(0, args.probe - len(watchers))]]
            sweeps: list[float] = []

            # 4. Single changes: one instance of fleet-0 appears on one host, then goes. Registered
            # through the agent API directly, as that host's daemon would: the watch path alone.
            single_s: list[float] = []
            before = emulator.stats()
            for k in range(args.rounds):
                sid = f"solo:{k}:9000"
                body = {"ID": sid, "Name": "fleet-0", "Address": "127.0.0.1", "Port": 9000}
                started = time.monotonic()
                emulator.put("/v1/agent/service/register", body)
                times, sw = converge(probed, f'"{sid}"'.encode(), 1, started, args.timeout)
                single_s += times
                sweeps += sw
                started = time.monotonic()
                emulator.put(f"/v1/agent/service/deregister/{sid}")
                times, sw = converge(probed, f'"{sid}"'.encode(), 0, started, args.timeout)
                single_s += times
                sweeps += sw
            single = emulator.stats().since(before)

            # 5. Waves: one more instance of fleet-0 on every host (a container on the shared
            # engine), then gone again: a fleet-wide deploy.
            register_s: list[float] = []
            deregister_s: list[float] = []
            before = emulator.stats()
            for _ in range(args.waves):
                c = containers.run(
                    image, ["sleep", "3600"], ports=PORTS, environment={"SERVICE_NAME": "fleet-0"}
                )
                started = time.monotonic()
                needle = f":{c.name}:".encode()
                times, sw = converge(probed, needle, n, started, args.timeout)
                register_s += times
                sweeps += sw
                c.kill()
                stopped = time.monotonic()
                times, sw = converge(probed, needle, 0, stopped, args.timeout)
                deregister_s += times
                sweeps += sw
            waves = emulator.stats().since(before)
            rss = statistics.mean(rss_mb(d.proc.pid) for d in ds if d.proc is not None)
            failures: Counter[str] = Counter()
            for d in ds:
                d.assert_alive()
                failures.update(str(e.get("error"))[:40] for e in d.events("consul_watch_failed"))
    finally:
        emulator.stop()
    return FleetResult(
        hosts=n,
        services=args.services,
        watchers=args.watchers,
        startup=startup,
        idle=idle,
        single=single,
        single_events=2 * args.rounds,
        single_s=single_s,
        waves=waves,
        wave_events=2 * args.waves,
        open_at_rest=open_at_rest,
        register_s=register_s,
        deregister_s=deregister_s,
        sweep_s=sweeps,
        rss_mb=rss,
        watch_failures=failures,
    )


# --------------------------------------------------------------------------------------------
# Report

GROUPS = {
    "agent writes": ("PUT /v1/agent/",),
    "agent reads": ("GET /v1/agent/", "GET /v1/status/"),
    "catalog/services": ("GET /v1/catalog/services",),
    "health/service": ("GET /v1/health/service/",),
}


def grouped(requests_: Counter[str]) -> dict[str, int]:
    out = dict.fromkeys(GROUPS, 0)
    out["other"] = 0
    for key, count in requests_.items():
        group = next((g for g, ps in GROUPS.items() if key.startswith(ps)), "other")
        out[group] += count
    return out


def per_host_per_min(r: FleetResult, phase: Phase) -> dict[str, float]:
    """Register-role requests divided among the N hosts, watcher requests among all daemons
    (every daemon runs one watcher), per minute of the phase."""
    minutes = max(phase.wall_s, 1e-9) / 60
    out = {}
    for group, count in grouped(phase.requests).items():
        divisor = r.daemons if group in ("catalog/services", "health/service") else r.hosts
        out[group] = count / divisor / minutes
    return out


def phases(r: FleetResult) -> tuple[tuple[str, Phase], ...]:
    return (("startup", r.startup), ("idle", r.idle), ("single", r.single), ("waves", r.waves))


def watch_keys(phase: Phase) -> list[str]:
    return [k for k in phase.requests if k.startswith(("GET /v1/catalog", "GET /v1/health"))]


def per_event(r: FleetResult, phase: Phase, events: int) -> tuple[float, float, float, float]:
    """(agent writes per host, agent reads per host, watcher responses per daemon, watcher KB
    per daemon), per event."""
    groups = grouped(phase.requests)
    watch = watch_keys(phase)
    responses = sum(phase.requests[k] for k in watch)
    kbytes = sum(phase.bytes[k] for k in watch) / 1024
    return (
        groups["agent writes"] / r.hosts / events,
        groups["agent reads"] / r.hosts / events,
        responses / r.daemons / events,
        kbytes / r.daemons / events,
    )


def report(results: list[FleetResult]) -> None:
    cols = [*GROUPS, "other"]
    print()
    print("Start-up, per host (watcher requests: per daemon; every daemon runs one watcher)")
    print(f"{'N':>4} " + " ".join(f"{g:>16}" for g in cols) + f" {'wall s':>7} {'emu CPU':>8}")
    for r in results:
        p = r.startup
        totals = {k: v * p.wall_s / 60 for k, v in per_host_per_min(r, p).items()}
        row = " ".join(f"{totals[g]:16.1f}" for g in cols)
        print(f"{r.hosts:>4} {row} {p.wall_s:7.0f} {p.cpu_s / p.wall_s * 100:7.0f}%")
    print()
    print("At rest: requests per host per minute, blocking queries held open")
    print(f"{'N':>4} {'requests/host/min':>17} {'open blocking':>13} {'per daemon':>10}")
    for r in results:
        rate = sum(per_host_per_min(r, r.idle).values())
        opened = sum(r.open_at_rest.values())
        print(f"{r.hosts:>4} {rate:>17.2f} {opened:>13} {opened / r.daemons:>10.1f}")
    print()
    print("Per event: agent requests per host, watcher responses and KB per daemon, convergence")
    print(
        f"{'N':>4} {'event':<28} {'writes':>6} {'reads':>6} {'responses':>9} {'KB':>8} "
        f"{'p50 s':>7} {'p99 s':>7}"
    )
    for r in results:
        rows = (
            ("one instance on one host", r.single, r.single_events, r.single_s),
            ("one instance on every host", r.waves, r.wave_events, r.register_s + r.deregister_s),
        )
        for label, phase, events, times in rows:
            w, rd, resp, kb = per_event(r, phase, events)
            print(
                f"{r.hosts:>4} {label:<28} {w:>6.1f} {rd:>6.1f} {resp:>9.1f} {kb:>8.1f} "
                f"{pct(times, 0.5):>7.2f} {pct(times, 0.99):>7.2f}"
            )
    print()
    for r in results:
        sweep = statistics.median(r.sweep_s)
        print(
            f"N={r.hosts}: {r.daemons} daemons, RSS {r.rss_mb:.0f} MB each; polling sweep "
            f"(convergence resolution) {sweep:.2f} s; watch failures logged: "
            f"{dict(r.watch_failures) or 'none'}"
        )
    print()
    print(
        json.dumps(
            [
                {
                    "hosts": r.hosts,
                    "services_per_host": r.services,
                    "watchers": r.watchers,
                    "phases": {
                        name: {
                            "wall_s": round(p.wall_s, 1),
                            "emulator_cpu_s": round(p.cpu_s, 1),
                            "requests": dict(sorted(p.requests.items())),
                            "response_bytes": dict(sorted(p.bytes.items())),
                        }
                        for name, p in phases(r)
                    },
                    "single_events": r.single_events,
                    "wave_events": r.wave_events,
                    "open_blocking_at_rest": dict(r.open_at_rest),
                    "single_p50_s": pct(r.single_s, 0.5),
                    "single_p99_s": pct(r.single_s, 0.99),
                    "wave_register_p50_s": pct(r.register_s, 0.5),
                    "wave_register_p99_s": pct(r.register_s, 0.99),
                    "wave_deregister_p50_s": pct(r.deregister_s, 0.5),
                    "wave_deregister_p99_s": pct(r.deregister_s, 0.99),
                    "sweep_median_s": statistics.median(r.sweep_s),
                    "rss_mb_mean": round(r.rss_mb, 1),
                    "watch_failures": dict(r.watch_failures),
                }
                for r in results
            ]
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="10,50,100", help="comma list of fleet sizes N")
    parser.add_argument("--services", type=int, default=5, help="containers (services) per host M")
    parser.add_argument("--watchers", type=int, default=5, help="--no-register daemons W")
    parser.add_argument("--rounds", type=int, default=5, help="single changes (add + remove)")
    parser.add_argument("--waves", type=int, default=1, help="fleet-wide waves (start + stop)")
    parser.add_argument("--idle", type=float, default=30.0, help="idle window, seconds")
    parser.add_argument("--batch", type=int, default=10, help="hosts started at a time")
    parser.add_argument("--probe", type=int, default=20, help="daemons watched for convergence")
    parser.add_argument("--timeout", type=float, default=900.0, help="deadline per wait, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    parser.add_argument("--serve-emulator", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_emulator:
        serve_emulator(*args.serve_emulator)
        return 0

    def stop(signum: int, _: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the clean-ups below

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # also when started in the background, where it is ignored
    sizes = [int(s) for s in args.hosts.split(",") if s.strip()]
    if not sizes or any(not 1 <= s <= MAX_HOSTS for s in sizes):
        parser.error(f"--hosts: sizes between 1 and {MAX_HOSTS}")

    client = docker.from_env()
    image = build_busybox_image(client, "registrator-test/busybox:latest")
    results: list[FleetResult] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    try:
        for n in sizes:
            started = time.monotonic()
            print(f"N={n}: {n} hosts x {args.services} services, {args.watchers} watchers ...")
            results.append(run_fleet(client, image, n, args, tmp))
            print(f"N={n}: done in {time.monotonic() - started:.0f} s", flush=True)
            report(results[-1:])
    finally:
        client.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if len(results) > 1:
        report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
