"""Registration benchmark: `.venv/bin/python bench/registration.py` (needs a Docker engine).

Prints, from one run on this machine:
  - event -> registered latency (p50, p99) of the daemon, beside the floor: when a raw Docker
    event subscriber (the Docker SDK reading /events) receives the same `start` events;
  - the time for a burst of 40 containers to be fully registered after the last one started;
  - the daemon's RSS with 1,000 registered services (100 host-network containers x 10 env ports).

Latencies are measured from the engine's own event timestamp (timeNano) to the daemon's
`service_registered` log timestamp and to the subscriber's receive time. Same host, same clock.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.docker_support import (
    ContainerFactory,
    build_busybox_image,
    wait_until,
)
from tests.integration.processes import TEST_NODE, Daemon

PORTS = {"8080/tcp": ("127.0.0.1", None)}


class RawSubscriber(threading.Thread):
    """The anchor: the cheapest possible consumer of the engine's event stream."""

    def __init__(self, client: docker.DockerClient) -> None:
        super().__init__(daemon=True)
        self.stream = client.events(decode=True, filters={"type": "container", "event": "start"})
        self.received: dict[str, tuple[int, float]] = {}  # container id -> (timeNano, received)

    def run(self) -> None:
        for event in self.stream:
            self.received[event["id"]] = (int(event["timeNano"]), time.time())

    def close(self) -> None:
        self.stream.close()


def registered_at(d: Daemon) -> dict[str, float]:
    """service ID -> when the daemon logged it registered (epoch seconds)."""
    out = {}
    for e in d.events("service_registered"):
        stamp = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
        out.setdefault(e["service_id"], stamp)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--burst", type=int, default=40)
    parser.add_argument("--rss-containers", type=int, default=100)
    parser.add_argument("--rss-ports", type=int, default=10)
    args = parser.parse_args()

    client = docker.from_env()
    image = build_busybox_image(client, "registrator-test/busybox:latest")
    tmp = Path(tempfile.mkdtemp(prefix="bench-registration-"))
    daemon = Daemon(tmp / "daemon.log", "-ip", "127.0.0.1", "--port-env", "P*_PORT")
    daemon.args.extend(["--log-level", "info"])
    subscriber = RawSubscriber(client)
    subscriber.start()
    daemon.start()
    try:
        daemon.wait_healthy()
        with ContainerFactory(client) as containers:
            # 1. Isolated starts: one at a time, each waited for.
            floor, ours = [], []
            for _ in range(args.samples):
                c = containers.run(image, ["sleep", "600"], ports=PORTS)
                sid = f"{TEST_NODE}:{c.name}:8080"
                wait_until(
                    lambda sid=sid, cid=c.id: (
                        sid in registered_at(daemon) and cid in subscriber.received
                    ),
                    timeout=30,
                    interval=0.02,
                    what="registration",
                )
                t_event, t_raw = subscriber.received[c.id]
                floor.append((t_raw - t_event / 1e9) * 1000)
                ours.append((registered_at(daemon)[sid] - t_event / 1e9) * 1000)
            added = [o - f for o, f in zip(ours, floor, strict=True)]
            containers.cleanup()

            # 2. A burst, started concurrently.
            with ThreadPoolExecutor(8) as pool:
                burst = list(
                    pool.map(
                        lambda _: containers.run(image, ["sleep", "600"], ports=PORTS),
                        range(args.burst),
                    )
                )
            ids = {f"{TEST_NODE}:{c.name}:8080" for c in burst}
            wait_until(
                lambda: (
                    ids <= registered_at(daemon).keys()
                    and all(c.id in subscriber.received for c in burst)
                ),
                timeout=120,
                interval=0.05,
                what="the burst",
            )
            last_start = max(subscriber.received[c.id][0] for c in burst) / 1e9
            last_registered = max(registered_at(daemon)[s] for s in ids)
            burst_ms = (last_registered - last_start) * 1000
            containers.cleanup()

            # 3. RSS with N x M services from host-network env ports.
            env = {f"P{n}_PORT": str(20000 + n) for n in range(args.rss_ports)}
            with ThreadPoolExecutor(8) as pool:
                many = list(
                    pool.map(
                        lambda _: containers.run(
                            image, ["sleep", "600"], network_mode="host", environment=env
                        ),
                        range(args.rss_containers),
                    )
                )
            total = args.rss_containers * args.rss_ports
            names = {c.name for c in many}
            wait_until(
                lambda: sum(1 for s in daemon.services() if s.split(":")[1] in names) >= total,
                timeout=300,
                interval=0.5,
                what=f"{total} services",
            )
            assert daemon.proc is not None
            rss = rss_mb(daemon.proc.pid)
            containers.cleanup()
    finally:
        daemon.kill9()
        subscriber.close()

    print(f"registration latency, {args.samples} isolated starts (ms from the engine's event):")
    print(
        f"  raw event subscriber (floor)  p50 {pct(floor, 0.5):7.1f}   p99 {pct(floor, 0.99):7.1f}"
    )
    print(f"  registrator                   p50 {pct(ours, 0.5):7.1f}   p99 {pct(ours, 0.99):7.1f}")
    print(
        f"  added by registrator          p50 {pct(added, 0.5):7.1f}   p99 {pct(added, 0.99):7.1f}"
        f"   (target p50 <= 20 ms)"
    )
    print(
        f"burst of {args.burst}: last registered {burst_ms:.0f} ms after the last start"
        f"   (target <= 1000 ms)"
    )
    print(f"RSS with {total} registered services: {rss:.1f} MB   (target <= 60 MB)")
    print(
        json.dumps(
            {
                "floor_p50_ms": pct(floor, 0.5),
                "ours_p50_ms": pct(ours, 0.5),
                "added_p50_ms": pct(added, 0.5),
                "added_p99_ms": pct(added, 0.99),
                "floor_mean_ms": statistics.mean(floor),
                "burst_ms": burst_ms,
                "rss_mb": rss,
                "services": total,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
