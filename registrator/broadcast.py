"""A latest-value broadcast: a producer publishes whole immutable values, each consumer sees the
newest one and never a backlog (a slow DNS zone build skips straight to the current state)."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Latest(Generic[T]):
    def __init__(self, initial: T) -> None:
        self._value = initial
        self._version = 0
        self._changed = asyncio.Condition()

    @property
    def version(self) -> int:
        return self._version

    def get(self) -> T:
        """The current value: a reference read, no lock, safe on any hot path."""
        return self._value

    async def publish(self, value: T) -> None:
        async with self._changed:
            self._value = value
            self._version += 1
            self._changed.notify_all()

    async def wait_newer(self, seen_version: int) -> tuple[int, T]:
        """Block until a value newer than `seen_version` exists; return (version, value)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._version > seen_version)
            return self._version, self._value
