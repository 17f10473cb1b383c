"""DNS throughput: registrator's responder against dnsmasq serving the same records.

    .venv/bin/python bench/dns_qps.py [--services 50] [--instances 3] [--duration 6] [--rounds 5]

Starts our server (`serve_dns` under uvloop, in a subprocess) and dnsmasq (host-record and srv-host
lines for the same names, addresses, ports and TTL) on 127.0.0.1, checks that both give the same
answers, then runs dnsperf with the same parameters against each, A then SRV queries, for
`--rounds` rounds (who goes first alternates). With two or more CPUs, dnsperf is pinned to one
core and the server under test to another, so the rate measures the server rather than where the
scheduler put it. Prints the median rates, the median of the per-round ratios ours/dnsmasq, and
each server's CPU time per answered query (from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DNSMASQ = "/usr/sbin/dnsmasq"
HOST = "127.0.0.1"
TTL = 2
LOAD_CPU, SERVER_CPU = 0, 1  # with --pin: dnsperf on one core, the server under test on another


def instances(services: int, per_service: int) -> list[tuple[str, str, int]]:
    """(service, IPv4 address, port) for every instance."""
    out = []
    for s in range(services):
        for i in range(per_service):
            out.append((f"svc-{s}", f"10.{s // 200}.{s % 200}.{i + 1}", 8000 + i))
    return out


def hex_name(address: str) -> str:
    return socket.inet_aton(address).hex() + ".addr.consul"


# -- our server (child process) ---------------------------------------------------------------


def serve_child(port: int, services: int, per_service: int) -> None:
    import uvloop

    from registrator.broadcast import Latest
    from registrator.dns import DnsConfig, serve_dns
    from registrator.logs import configure_logging
    from registrator.model import CatalogInstance, CatalogSnapshot, ServiceInstance

    configure_logging("json", "warning")
    snapshot = CatalogSnapshot(
        instances=tuple(
            CatalogInstance(
                node="bench",
                node_address="127.0.0.1",
                service=ServiceInstance(
                    id=f"bench:{name}-{address}:{p}", name=name, address=address, port=p
                ),
            )
            for name, address, p in instances(services, per_service)
        ),
        nodes=(("bench", "127.0.0.1"),),
        version=1,
    )
    config = DnsConfig(host=HOST, port=port, ttl=TTL, node_ttl=TTL)

    async def main() -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(serve_dns(config, Latest(snapshot), ready))
        await ready.wait()
        print("ready", flush=True)
        await task

    uvloop.run(main())


# -- orchestration ----------------------------------------------------------------------------


def free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
                return port


def dnsmasq_conf(port: int, tmp: Path, services: int, per_service: int) -> Path:
    lines = [
        "no-resolv",
        "no-hosts",
        "bind-interfaces",
        f"listen-address={HOST}",
        f"port={port}",
        f"pid-file={tmp / 'dnsmasq.pid'}",
        "local=/consul/",
        f"local-ttl={TTL}",
    ]
    for name, address, p in instances(services, per_service):
        lines.append(f"host-record={name}.service.consul,{address}")
        lines.append(f"host-record={hex_name(address)},{address}")
        lines.append(f"srv-host=_{name}._tcp.service.consul,{hex_name(address)},{p},1,1")
    path = tmp / "dnsmasq.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def query_files(tmp: Path, services: int) -> dict[str, Path]:
    files = {
        "A": [f"svc-{s}.service.consul A" for s in range(services)],
        "SRV": [f"_svc-{s}._tcp.service.consul SRV" for s in range(services)],
    }
    out = {}
    for qtype, lines in files.items():
        out[qtype] = tmp / f"queries-{qtype}.txt"
        out[qtype].write_text("\n".join(lines) + "\n")
    return out


def wait_answering(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    import dns.exception
    import dns.message
    import dns.query

    deadline = time.monotonic() + 15
    query = dns.message.make_query("svc-0.service.consul", "A")
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            dns.query.udp(query, HOST, port=port, timeout=0.2)
            return
        except (dns.exception.Timeout, OSError):
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} does not answer on port {port}") from None


def same_answers(ours: int, theirs: int, services: int) -> None:
    """Both servers must serve the same records, or the comparison means nothing."""
    import dns.message
    import dns.query

    for s in (0, services - 1):
        for name, qtype in (
            (f"svc-{s}.service.consul", "A"),
            (f"_svc-{s}._tcp.service.consul", "SRV"),
        ):
            answers = []
            for port in (ours, theirs):
                msg = dns.query.udp(dns.message.make_query(name, qtype), HOST, port=port, timeout=2)
                rrs = sorted(rd.to_text() for rrset in msg.answer for rd in rrset)
                extra = sorted(rd.to_text() for rrset in msg.additional for rd in rrset)
                answers.append((rrs, extra, [rrset.ttl for rrset in msg.answer]))
            if answers[0] != answers[1]:
                raise SystemExit(f"answers differ for {name} {qtype}: {answers}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    qps: float
    completed: int
    lost_pct: float
    cpu_us_per_query: float


def dnsperf(port: int, pid: int, queries: Path, args: argparse.Namespace) -> Run:
    cmd = ["dnsperf", "-s", HOST, "-p", str(port), "-d", str(queries)]
    cmd += ["-l", str(args.duration), "-c", str(args.clients), "-q", str(args.outstanding)]
    if args.max_qps:
        cmd += ["-Q", str(args.max_qps)]
    before = cpu_seconds(pid)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if args.pin:
        os.sched_setaffinity(proc.pid, {LOAD_CPU})
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"dnsperf failed: {err}")
    cpu = cpu_seconds(pid) - before
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    lost = float(re.search(r"Queries lost:\s+\d+ \(([\d.]+)%\)", out).group(1))  # type: ignore[union-attr]
    return Run(qps, completed, lost, cpu / max(completed, 1) * 1e6)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6, help="seconds per dnsperf run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4, help="dnsperf -c")
    parser.add_argument("--outstanding", type=int, default=100, help="dnsperf -q")
    parser.add_argument("--max-qps", type=int, default=0, help="dnsperf -Q (0: unlimited)")
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=(os.cpu_count() or 1) >= 2,
        help="pin dnsperf to CPU 0 and both servers to CPU 1 (default with 2+ CPUs), so that "
        "each server has one whole core and the rate measures the server, not the scheduler",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve_child(args.serve, args.services, args.instances)
        return 0
    for tool in ("dnsperf", DNSMASQ):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: dnsperf, dnsmasq-base)")

    with tempfile.TemporaryDirectory(prefix="dns-qps-") as tmpdir:
        tmp = Path(tmpdir)
        ours_port, theirs_port = free_port(), free_port()
        files = query_files(tmp, args.services)
        conf = dnsmasq_conf(theirs_port, tmp, args.services, args.instances)
        ours = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                str(ours_port),
                "--services",
                str(args.services),
                "--instances",
                str(args.instances),
            ],
            stdout=subprocess.DEVNULL,
        )
        theirs = subprocess.Popen(
            [DNSMASQ, "--no-daemon", f"--conf-file={conf}"], stderr=subprocess.DEVNULL
        )
        try:
            wait_answering(ours_port, ours, "registrator")
            wait_answering(theirs_port, theirs, "dnsmasq")
            same_answers(ours_port, theirs_port, args.services)
            if args.pin:
                for proc in (ours, theirs):
                    os.sched_setaffinity(proc.pid, {SERVER_CPU})
            results: dict[tuple[str, str], list[Run]] = {}
            servers = [("ours", ours_port, ours), ("dnsmasq", theirs_port, theirs)]
            for r in range(args.rounds):
                for qtype in ("A", "SRV"):
                    # alternate who goes first, so that neither always gets the quieter moment
                    for who, port, proc in servers if r % 2 == 0 else servers[::-1]:
                        run = dnsperf(port, proc.pid, files[qtype], args)
                        results.setdefault((qtype, who), []).append(run)
                        print(
                            f"round {r + 1} {qtype:<3} {who:<8} {run.qps:>10,.0f} q/s  "
                            f"lost {run.lost_pct:.2f}%  cpu {run.cpu_us_per_query:.1f} us/q",
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            for proc in (ours, theirs):
                proc.kill()
                proc.wait()

    rate = "unlimited" if not args.max_qps else f"-Q {args.max_qps}"
    pinned = f"dnsperf on CPU {LOAD_CPU}, servers on CPU {SERVER_CPU}" if args.pin else "no pinning"
    print(
        f"\ndnsperf -l {args.duration} -c {args.clients} -q {args.outstanding} ({rate}), UDP, "
        f"{args.services} services x {args.instances} instances, {args.rounds} rounds, "
        f"{os.cpu_count()} CPUs, {pinned}"
    )
    print(
        f"{'query':<6}{'registrator q/s':>17}{'dnsmasq q/s':>14}{'ratio':>8}"
        f"{'registrator us/q':>19}{'dnsmasq us/q':>15}"
    )
    ratios = []
    for qtype in ("A", "SRV"):
        mine, anchor = results[(qtype, "ours")], results[(qtype, "dnsmasq")]
        # rates: medians over rounds; ratio: median of the per-round ratios (paired runs)
        ratio = statistics.median(m.qps / a.qps for m, a in zip(mine, anchor, strict=True))
        ratios.append(ratio)
        print(
            f"{qtype:<6}{statistics.median(r.qps for r in mine):>17,.0f}"
            f"{statistics.median(r.qps for r in anchor):>14,.0f}{ratio:>7.2f}x"
            f"{statistics.median(r.cpu_us_per_query for r in mine):>19.1f}"
            f"{statistics.median(r.cpu_us_per_query for r in anchor):>15.1f}"
        )
    verdict = "met" if min(ratios) >= 1.0 else "NOT met"
    print(f"goal >= 1.00x: {verdict} (lowest {min(ratios):.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
