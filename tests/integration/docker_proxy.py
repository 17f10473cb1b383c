"""A read-only filtering proxy for the Docker engine API: a unix socket that forwards GET requests
to the engine's socket and answers 403 to every other method, like the socket proxies people put
in front of `/var/run/docker.sock` (tecnativa/docker-socket-proxy with `POST=0`).

It speaks HTTP/1.1 on both sides, keeps client connections alive across requests, and relays each
response by its own framing (Content-Length, chunked, or until the engine closes), writing every
chunk as soon as it arrives: the `/events` stream must reach the client live, never buffered.
Every request line is recorded, refused or not."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.integration.thread_loops import close_loop

ENGINE_SOCKET = Path("/var/run/docker.sock")
ALLOWED_METHODS = frozenset({"GET"})
_MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Seen:
    method: str
    target: str  # the request target as sent: /v1.41/containers/json?filters=...
    allowed: bool

    @property
    def path(self) -> str:
        return urlsplit(self.target).path


class _ClientGone(Exception):
    """The client closed its side; the relay stops quietly."""


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """One request or response head up to its blank line; None at a clean EOF."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise ConnectionError("connection closed in the middle of an HTTP head") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise ConnectionError("HTTP head too large") from exc


def _headers(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    try:
        writer.write(data)
        await writer.drain()
    except (ConnectionError, RuntimeError) as exc:
        raise _ClientGone from exc


async def _relay_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str]
) -> bool:
    """Copy one message body from `reader` to `writer` as it arrives. False when the body ends
    with the connection (no framing), so neither side may be reused."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                trailer = size_line
                while True:  # optional trailers, then the blank line
                    line = await reader.readuntil(b"\r\n")
                    trailer += line
                    if line == b"\r\n":
                        break
                await _send(writer, trailer)
                return True
            data = await reader.readexactly(size + 2)
            await _send(writer, size_line + data)  # one chunk, forwarded at once
    if "content-length" in headers:
        remaining = int(headers["content-length"])
        while remaining > 0:
            data = await reader.read(min(remaining, 65536))
            if not data:
                raise ConnectionError("body shorter than its Content-Length")
            remaining -= len(data)
            await _send(writer, data)
        return True
    while data := await reader.read(65536):
        await _send(writer, data)
    return False


class ReadOnlyDockerProxy:
    """Serves on `path` from a thread with its own event loop (tests drive it synchronously)."""

    def __init__(self, path: Path, upstream: Path = ENGINE_SOCKET) -> None:
        self.path = path
        self.upstream = upstream
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="docker-proxy", daemon=True)
        self._main: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    @property
    def refused(self) -> list[Seen]:
        return [s for s in self.seen if not s.allowed]

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._open.add(writer)
        try:
            while (head := await _read_head(reader)) is not None:
                request_line, headers = _headers(head)
                method, _, rest = request_line.partition(" ")
                target = rest.rsplit(" ", 1)[0]
                if method not in ALLOWED_METHODS:
                    self._record(Seen(method, target, allowed=False))
                    body = json.dumps({"message": f"{method} refused: read-only proxy"}).encode()
                    await _send(
                        writer,
                        b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body),
                    )
                    return
                self._record(Seen(method, target, allowed=True))
                if upstream is None:
                    upstream = await asyncio.open_unix_connection(str(self.upstream))
                    self._open.add(upstream[1])
                up_reader, up_writer = upstream
                up_writer.write(head)
                await up_writer.drain()
                if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
                    await _relay_body(reader, up_writer, headers)  # a GET with a body: unusual
                response = await _read_head(up_reader)
                if response is None:
                    return
                await _send(writer, response)
                status_line, response_headers = _headers(response)
                if status_line.split(" ")[1:2] in (["204"], ["304"]):
                    continue
                if not await _relay_body(up_reader, writer, response_headers):
                    return
                if "close" in (
                    headers.get("connection", "").lower(),
                    response_headers.get("connection", "").lower(),
                ):
                    return
        except (_ClientGone, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # only the proxy's own shutdown cancels; ending quietly keeps asyncio's log clean
        except Exception as exc:  # noqa: BLE001 - kept for the test to report
            self._error = exc
        finally:
            # No await here: a shutdown cancel could land in it and skip the rest. Transports
            # still closing when the loop stops are aborted by _run.
            writer.close()
            if upstream is not None:
                upstream[1].close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            try:
                server = await asyncio.start_unix_server(
                    self._handle, path=str(self.path), limit=_MAX_HEAD
                )
            except OSError as exc:
                self._error = exc
                return
            finally:
                self._ready.set()
            async with server:
                await server.serve_forever()

        self._main = self._loop.create_task(serve())
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._main)
        close_loop(self._loop, self._open)

    @contextlib.contextmanager
    def running(self) -> Iterator[ReadOnlyDockerProxy]:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            self._thread.join(10)
            raise RuntimeError(f"the Docker proxy did not start: {self._error!r}")
        try:
            yield self
        finally:
            if self._main is not None:
                self._loop.call_soon_threadsafe(self._main.cancel)
            self._thread.join(10)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            if self._error is not None:
                raise AssertionError(f"the Docker proxy failed: {self._error!r}")
