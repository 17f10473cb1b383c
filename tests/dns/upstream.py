"""A dnsmasq on 127.0.0.1 to stand in for an upstream recursor (and the benchmark's anchor)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message

DNSMASQ = "/usr/sbin/dnsmasq"


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (at the time of asking)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return int(port)
    raise RuntimeError("no free port")


@contextlib.asynccontextmanager
async def dnsmasq(tmp: Path, lines: Sequence[str], exe: str = DNSMASQ) -> AsyncIterator[int]:
    """Run dnsmasq with config `lines` on a free port; yield the port once it answers."""
    port = free_port()
    conf = tmp / "dnsmasq.conf"
    conf.write_text(
        "\n".join(
            [
                "no-resolv",
                "no-hosts",
                "bind-interfaces",
                "listen-address=127.0.0.1",
                f"port={port}",
                f"pid-file={tmp / 'dnsmasq.pid'}",
                *lines,
            ]
        )
        + "\n"
    )
    proc = subprocess.Popen(
        [exe, "--no-daemon", f"--conf-file={conf}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        probe = dns.message.make_query("probe.invalid", "A")
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"dnsmasq exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
            try:
                await dns.asyncquery.udp(probe, "127.0.0.1", port=port, timeout=0.2)
                break
            except (dns.exception.Timeout, OSError):
                if loop.time() > deadline:
                    raise
        yield port
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
