"""A byte forwarder in front of the Consul emulator, so the daemon can reach it over a unix
socket (consul-unix://) or over TLS with client certificates (consul-tls://)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.integration.thread_loops import close_loop


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(root: Path) -> Pki:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=root, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        (root / f"{name}.ext").write_text(ext + "\n")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.pem",
        )
    return Pki(
        root / "ca.pem",
        root / "server.pem",
        root / "server.key",
        root / "client.pem",
        root / "client.key",
    )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    except asyncio.CancelledError:
        pass  # only the forwarder's own shutdown cancels; ending quietly keeps asyncio's log clean
    finally:
        writer.close()  # no await: Forwarder._run aborts what is still closing when it stops


class Forwarder:
    """Runs its own event loop in a thread; `.connections` counts accepted client connections."""

    def __init__(
        self, target_port: int, *, unix_path: Path | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.target_port = target_port
        self.unix_path = unix_path
        self.tls = tls
        self.port = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._main: asyncio.Task[None] | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._open.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except (OSError, asyncio.CancelledError):
            writer.close()
            return
        self._open.add(up_writer)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            try:
                if self.unix_path is not None:
                    server = await asyncio.start_unix_server(self._handle, path=str(self.unix_path))
                else:
                    server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
                    self.port = server.sockets[0].getsockname()[1]
            finally:
                self._ready.set()
            async with server:
                await server.serve_forever()

        self._main = self._loop.create_task(serve())
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._main)
        close_loop(self._loop, self._open)

    @contextlib.contextmanager
    def running(self) -> Iterator[Forwarder]:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the forwarder did not start")
        try:
            yield self
        finally:
            if self._main is not None:
                self._loop.call_soon_threadsafe(self._main.cancel)
            self._thread.join(10)


def server_tls(pki: Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    ctx.verify_mode = ssl.CERT_REQUIRED  # the daemon must present its client certificate
    return ctx
