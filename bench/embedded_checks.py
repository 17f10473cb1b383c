"""Embedded health checks benchmark: `.venv/bin/python bench/embedded_checks.py` (no Docker).

What running Consul-style HTTP checks in the daemon costs: N services, each with one HTTP check at
a 1 s interval (10x registrator's default rate), probed by the embedded registry for T seconds
against a small HTTP app in another process. Prints from one run on this machine:
  - probes per second the registry sustained, and its CPU time per probe (user + system);
  - the same figures for the anchor, measured in the same run: bare aiohttp GETs with the same
    connection policy (no keep-alive), the same N loops and the same interval, and nothing else;
  - the daemon-side memory that N running checks add (RSS before and after registering them).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from registrator.backends.embedded import EmbeddedRegistry
from registrator.broadcast import Latest
from registrator.logs import configure_logging
from registrator.model import CatalogSnapshot, Check, ServiceInstance

APP = """
import sys
from aiohttp import web
count = 0
async def health(request):
    global count
    count += 1
    return web.Response(text="ok")
async def seen(request):
    return web.Response(text=str(count))
app = web.Application()
app.router.add_get("/health", health)
app.router.add_get("/count", seen)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def served(base: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(f"{base}/count") as r:
        return int(await r.text())


async def measure(
    base: str, seconds: float, run: Callable[[], Awaitable[None]]
) -> tuple[float, float]:
    """(requests per second the app saw, CPU ms in this process per request)."""
    task = asyncio.create_task(run())
    await asyncio.sleep(2)  # let the loops reach their steady rhythm
    n0, c0, t0 = await served(base), cpu_s(), time.monotonic()
    await asyncio.sleep(seconds)
    n1, c1, t1 = await served(base), cpu_s(), time.monotonic()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    requests = n1 - n0 - 1  # minus our own /count read
    return requests / (t1 - t0), 1000 * (c1 - c0) / max(requests, 1)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--port", type=int, default=18461)
    args = parser.parse_args()
    configure_logging(level="warning")  # 1,000 check_status_changed lines are not the point
    base = f"http://127.0.0.1:{args.port}"
    app = subprocess.Popen([sys.executable, "-c", APP, str(args.port)])
    try:
        for _ in range(100):
            try:
                await served(base)
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)

        async def anchor() -> None:
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True)
            ) as session:

                async def loop() -> None:
                    while True:
                        async with session.get(f"{base}/health") as r:
                            await r.content.read(4096)
                        await asyncio.sleep(1.0)

                await asyncio.gather(*(loop() for _ in range(args.services)))

        anchor_rate, anchor_ms = await measure(base, args.seconds, anchor)

        before = rss_mb()
        registry = EmbeddedRegistry("bench")
        snapshots: Latest[CatalogSnapshot] = Latest(CatalogSnapshot())
        await registry.start()

        async def ours() -> None:
            watcher = asyncio.create_task(registry.watch_catalog(snapshots))
            for n in range(args.services):
                await registry.register(
                    ServiceInstance(
                        id=f"bench:c{n}:8080",
                        name=f"svc{n % 50}",
                        address="127.0.0.1",
                        port=args.port,
                        checks=(Check(http=f"{base}/health", interval="1s"),),
                    )
                )
            await watcher

        ours_rate, ours_ms = await measure(base, args.seconds, ours)
        after = rss_mb()
        passing = sum(i.status == "passing" for i in snapshots.get().instances)
        await registry.close()
    finally:
        app.terminate()
        app.wait(10)

    print(f"{args.services} services x 1 HTTP check every 1 s, {args.seconds:g} s measured")
    print(f"  embedded registry: {ours_rate:7.1f} probes/s  {ours_ms:.2f} ms CPU per probe")
    print(f"  anchor (bare GETs): {anchor_rate:6.1f} req/s     {anchor_ms:.2f} ms CPU per request")
    print(f"  ratio (CPU per probe, ours / anchor): {ours_ms / anchor_ms:.2f}x")
    print(f"  instances passing at the end: {passing}/{args.services}")
    print(f"  RSS added by {args.services} running checks: {after - before:.1f} MB")


if __name__ == "__main__":
    asyncio.run(main())
