#!/usr/bin/env python3
"""haproxy-master-reload SOCKET [TIMEOUT_S]: reload HAProxy through its master CLI and report
whether the new configuration was taken.

For `--haproxy-reload` when HAProxy runs elsewhere (another container, another unit): the daemon
then needs no signal rights over HAProxy's process and no Docker write access, only the master
socket (`haproxy -W -S SOCKET,mode,660,gid,GID`). HAProxy 2.6's `reload` answers nothing, so this
reads the master's counters (`show proc`: `<pid> master <reloads> [failed: <n>] ...`) before and
after. Exit 0: reloaded; 1: HAProxy refused the configuration (the old workers keep serving);
2: no answer in time. Standard library only."""

from __future__ import annotations

import re
import socket
import sys
import time

_MASTER = re.compile(r"^\d+\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]", re.MULTILINE)


def master_command(path: str, line: str, timeout: float = 5.0) -> str:
    """One master CLI command; the answer ends when HAProxy closes after our shutdown."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(line.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def counters(path: str) -> tuple[int, int]:
    """(reloads, failed reloads) of the master process."""
    text = master_command(path, "show proc")
    match = _MASTER.search(text)
    if match is None:
        raise ValueError(f"unexpected `show proc` answer: {text[:200]!r}")
    return int(match.group(1)), int(match.group(2))


def reload(path: str, timeout: float = 30.0) -> int:
    reloads, failed = counters(path)
    master_command(path, "reload")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            now_reloads, now_failed = counters(path)
        except (OSError, ValueError):  # the master re-executes itself meanwhile
            continue
        if now_failed > failed:
            print(f"haproxy refused the new configuration (failed reloads: {now_failed})")
            return 1
        if now_reloads > reloads:
            return 0
    print(f"haproxy did not report the reload within {timeout:.0f}s")
    return 2


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.split("\n", 1)[0], file=sys.stderr)
        return 2
    try:
        return reload(argv[0], float(argv[1]) if len(argv) == 2 else 30.0)
    except (OSError, ValueError) as exc:
        print(f"haproxy master CLI at {argv[0]}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
