"""The Docker engine, read-only. The only module that imports aiodocker: everything leaves here as
`registrator.model` types or `registrator.errors` exceptions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiodocker
import aiohttp

from registrator.errors import DockerUnavailable, InspectError
from registrator.model import Container


@dataclass(frozen=True, slots=True)
class EngineInfo:
    name: str  # the engine host's name: the default --node
    version: str


class DockerSource:
    """Reads containers from one engine. Only GET requests and the event stream."""

    def __init__(self, client: aiodocker.Docker) -> None:
        self._client = client

    async def engine_info(self) -> EngineInfo:
        info = await self._call(self._client.system.info())
        return EngineInfo(name=str(info.get("Name") or ""), version=str(info.get("ServerVersion")))

    async def running_ids(self) -> list[str]:
        """IDs of running (and paused) containers, oldest first for a stable order."""
        listed = await self._call(
            self._client.containers.list(filters=json.dumps({"status": ["running", "paused"]}))
        )
        rows = sorted(listed, key=lambda c: (c._container.get("Created", 0), c.id))
        return [str(c.id) for c in rows]

    async def inspect(self, container_id: str) -> Container | None:
        """The container, or None when it is gone. InspectError when its JSON is unusable."""
        try:
            raw = await self._client.containers.container(container_id).show()
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return None
            raise DockerUnavailable(f"inspect {container_id[:12]}: {exc.message}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise DockerUnavailable(f"inspect {container_id[:12]}: {exc}") from exc
        if not isinstance(raw, dict):
            raise InspectError(f"container {container_id[:12]}: inspect did not return an object")
        return Container.from_inspect(raw)

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except aiodocker.DockerError as exc:
            raise DockerUnavailable(f"engine answered {exc.status}: {exc.message}") from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise DockerUnavailable(f"engine unreachable: {exc}") from exc


@asynccontextmanager
async def open_docker(url: str | None = None) -> AsyncIterator[DockerSource]:
    """Connect to `url`, else DOCKER_HOST, else the local socket (aiodocker's search order)."""
    try:
        client = aiodocker.Docker(url=url)
    except (ValueError, OSError) as exc:
        raise DockerUnavailable(f"no Docker engine to connect to: {exc}") from exc
    try:
        yield DockerSource(client)
    finally:
        await client.close()
