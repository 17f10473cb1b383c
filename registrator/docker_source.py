"""The Docker engine, read-only. The only module that imports aiodocker: everything leaves here as
`registrator.model` types or `registrator.errors` exceptions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiodocker
import aiohttp

from registrator.errors import DockerStreamClosed, DockerUnavailable, InspectError
from registrator.model import Container

# What can change a container's registrations. Everything else (exec_*, attach, resize...) is noise.
WATCHED_ACTIONS = frozenset(
    {
        "start",
        "die",
        "stop",
        "kill",
        "destroy",
        "pause",
        "unpause",
        "rename",
        "restart",
        "update",
        "health_status",
        "connect",
        "disconnect",
    }
)


@dataclass(frozen=True, slots=True)
class DockerEvent:
    action: str  # "start", "die", "health_status" (without its ": healthy" suffix), "connect"...
    container_id: str
    time_nano: int


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
        rows = sorted(listed, key=lambda c: (c["Created"], c.id))
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

    async def exited_names(self) -> dict[str, str]:
        """Exited containers: name -> ID (for `-deregister on-success` after a restart)."""
        listed = await self._call(
            self._client.containers.list(all=True, filters=json.dumps({"status": ["exited"]}))
        )
        out = {}
        for c in listed:
            for name in c["Names"] or ():
                out[str(name).lstrip("/")] = str(c.id)
        return out

    async def events(self, since_nano: int | None = None) -> AsyncIterator[DockerEvent]:
        """Container and network events, from `since_nano` (the engine replays what we missed).
        The stream never ends quietly: its end raises DockerStreamClosed."""
        params: dict[str, Any] = {"filters": json.dumps({"type": ["container", "network"]})}
        if since_nano is not None:
            params["since"] = f"{since_nano // 1_000_000_000}.{since_nano % 1_000_000_000:09d}"
        subscriber = self._client.events.subscribe(create_task=False)  # type: ignore[no-untyped-call]
        # aiodocker's own run() publishes into a channel; running it here keeps the task owned.
        reader = asyncio.create_task(self._client.events.run(**params))
        try:
            while True:
                raw = await subscriber.get()
                if raw is None:
                    error = reader.exception() if reader.done() else None
                    raise DockerStreamClosed(f"event stream ended ({error or 'closed by engine'})")
                event = _parse_event(raw)
                if event is not None:
                    yield event
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await self._client.events.stop()  # type: ignore[no-untyped-call]

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
    except (ValueError, OSError, AssertionError) as exc:  # it asserts when no socket exists
        raise DockerUnavailable(
            f"no Docker engine to connect to: {str(exc) or 'no socket found'}"
        ) from exc
    try:
        yield DockerSource(client)
    finally:
        await client.close()


def _parse_event(raw: Any) -> DockerEvent | None:
    if not isinstance(raw, dict):
        return None
    action = str(raw.get("Action") or raw.get("status") or "").split(":", 1)[0]
    if action not in WATCHED_ACTIONS:
        return None
    actor = raw.get("Actor") or {}
    if raw.get("Type") == "network":
        container_id = (actor.get("Attributes") or {}).get("container", "")
    else:
        container_id = actor.get("ID") or raw.get("id") or ""
    if not container_id:
        return None
    return DockerEvent(action, str(container_id), int(raw.get("timeNano") or 0))
