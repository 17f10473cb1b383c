"""`registrator --dry-run`: what the daemon would register for the containers running now."""

from __future__ import annotations

import json
from typing import TextIO

from registrator.docker_source import open_docker
from registrator.errors import InspectError
from registrator.logs import get_logger
from registrator.mapping import MappingPolicy, services_for
from registrator.model import ServiceInstance
from registrator.netinfo import default_route_address
from registrator.settings import Settings


async def dry_run(settings: Settings, out: TextIO) -> None:
    """Print the registration bodies as a JSON array; log each skip on stderr."""
    log = get_logger()
    instances: list[ServiceInstance] = []
    async with open_docker() as docker:
        info = await docker.engine_info()
        policy = MappingPolicy.from_settings(settings, info.name, default_route_address())
        for container_id in await docker.running_ids():
            try:
                container = await docker.inspect(container_id)
            except InspectError as exc:
                log.warning(
                    "container_skipped",
                    container_id=container_id[:12],
                    reason="inspect_invalid",
                    detail=str(exc),
                )
                continue
            if container is None:  # removed between list and inspect
                continue
            mapped = services_for(container, policy)
            for skip in mapped.skipped:
                log.warning(skip.event, container_id=container.short_id, **skip.as_log())
            instances.extend(mapped.instances)
    bodies = [i.to_consul() for i in sorted(instances, key=lambda i: i.id)]
    out.write(json.dumps(bodies, indent=2, ensure_ascii=False) + "\n")
    out.flush()
