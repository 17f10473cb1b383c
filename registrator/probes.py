"""Health probes the embedded registry runs itself (in Consul mode the agent runs them): HTTP and
TCP checks, judged by Consul's rules, so that DNS and the proxy drop an instance whose container
runs but whose app does not answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp

from registrator.durations import parse_go_duration
from registrator.model import Check, Health

DEFAULT_INTERVAL_S = 10.0  # registrator's SERVICE_CHECK_INTERVAL default
DEFAULT_TIMEOUT_S = 10.0  # Consul's default for HTTP and TCP checks
MAX_OUTPUT = 4096  # Consul keeps the first 4 KB of a check's output
USER_AGENT = "consul-registrator health check"
RUNNABLE_KINDS = frozenset({"http", "tcp"})
MIN_INTERVAL_S = 1.0  # Consul's floor for check intervals
_SEVERITY: dict[Health, int] = {"passing": 0, "warning": 1, "critical": 2}
_BY_NAME: dict[str, Health] = {"passing": "passing", "warning": "warning", "critical": "critical"}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    status: Health
    output: str


def http_health(code: int) -> Health:
    """Consul's rule: any 2xx passes, 429 Too Many Requests warns, everything else is critical."""
    if 200 <= code < 300:
        return "passing"
    if code == 429:
        return "warning"
    return "critical"


def worst(statuses: Iterable[Health]) -> Health:
    return max(statuses, key=_SEVERITY.__getitem__, default="passing")


def initial_status(check: Check) -> Health:
    """What a check reports before its first run: Consul starts checks critical unless the
    registration names an initial status."""
    return _BY_NAME.get(check.status or "", "critical")


def timings(check: Check) -> tuple[float, float]:
    """(interval, timeout) in seconds. The mapping already refused bad durations; a zero or
    missing one falls back to the default. Like Consul, no interval under a second, and a
    timeout never longer than the interval."""
    interval = parse_go_duration(check.interval or "") or DEFAULT_INTERVAL_S
    timeout = parse_go_duration(check.timeout or "") or DEFAULT_TIMEOUT_S
    interval = max(interval, MIN_INTERVAL_S)
    timeout = timeout if timeout > 0 else DEFAULT_TIMEOUT_S
    return interval, min(timeout, interval)


def split_host_port(address: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port`, as Consul's TCP checks take them."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"not host:port: {address!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


class Prober:
    """Runs one probe at a time per call; owns the HTTP client session."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # No keep-alive, like Consul's checks: each probe proves the app still accepts connections.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            headers={"User-Agent": USER_AGENT, "Accept": "text/plain, text/*, */*"},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def probe(self, check: Check) -> ProbeResult:
        if check.kind not in RUNNABLE_KINDS:
            raise ValueError(f"the embedded registry does not run {check.kind} checks")
        _, limit = timings(check)
        try:
            async with asyncio.timeout(limit):
                if check.http:
                    return await self._http(check, check.http)
                return await _tcp(check.tcp or "")
        except TimeoutError:
            return ProbeResult("critical", f"{_describe(check)}: timed out after {limit:g}s")

    async def _http(self, check: Check, url: str) -> ProbeResult:
        if self._session is None:
            raise RuntimeError("Prober.start() was not awaited")
        try:
            async with self._session.request(
                check.method or "GET", url, ssl=not check.tls_skip_verify
            ) as response:
                body = await response.content.read(MAX_OUTPUT)
        except (aiohttp.ClientError, ValueError) as exc:
            return ProbeResult("critical", f"{_describe(check)}: {type(exc).__name__}: {exc}")
        text = body.decode("utf-8", errors="replace")
        return ProbeResult(
            http_health(response.status),
            f"{_describe(check)}: {response.status} {response.reason} Output: {text}",
        )


async def _tcp(address: str) -> ProbeResult:
    try:
        host, port = split_host_port(address)
        _, writer = await asyncio.open_connection(host, port)
    except (OSError, ValueError) as exc:
        return ProbeResult("critical", f"TCP connect {address}: {exc}")
    writer.close()
    with contextlib.suppress(OSError):  # the app closing first still accepted the connection
        await writer.wait_closed()
    return ProbeResult("passing", f"TCP connect {address}: Success")


def _describe(check: Check) -> str:
    if check.http:
        return f"HTTP {check.method or 'GET'} {check.http}"
    return f"TCP connect {check.tcp}"
