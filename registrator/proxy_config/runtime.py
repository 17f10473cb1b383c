"""The HAProxy Runtime API (stats socket) client: one connection per command (I/O shell)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from registrator.proxy_config.config import ProxyConfigError

MAX_REPLY = 16 * 1024 * 1024


class RuntimeApiError(ProxyConfigError):
    """The socket did not answer, or refused a command."""


class RuntimeApi:
    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self.commands = 0  # sent, for the stats

    async def command(self, line: str) -> str:
        """Send one command; return HAProxy's reply text."""
        if "\n" in line or ";" in line:
            raise RuntimeApiError(f"refusing a command with a newline or ';': {line!r}")
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_unix_connection(str(self.path))
                try:
                    writer.write(line.encode() + b"\n")
                    await writer.drain()
                    data = await reader.read(MAX_REPLY)
                    chunks = [data]
                    while data:
                        data = await reader.read(MAX_REPLY)
                        chunks.append(data)
                finally:
                    writer.close()
                    await writer.wait_closed()
        except (OSError, TimeoutError) as exc:
            raise RuntimeApiError(f"runtime API {self.path}: {line.split()[0]}: {exc!r}") from exc
        self.commands += 1
        return b"".join(chunks).decode(errors="replace")
