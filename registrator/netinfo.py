"""Facts about this host that the mapping needs but cannot look up itself."""

from __future__ import annotations

import socket


def default_route_address() -> str | None:
    """The source address the kernel picks for the default route, without sending a packet:
    connect() on a UDP socket only selects a route. None when the host has no default route."""
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect((probe, 9))
                address = str(sock.getsockname()[0])
        except OSError:
            continue
        if address not in ("0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
            return address
    return None
