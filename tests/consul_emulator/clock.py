"""Clocks: real monotonic time plus a virtual offset that tests can advance.

Every deadline in the emulator (TTL expiry, DeregisterCriticalServiceAfter reaping, blocking-query
timeouts) is expressed on one of these clocks, so ``advance()`` moves all of them at once.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A source of monotonic seconds that tests can push forward."""

    def now(self) -> float:
        """Current time in seconds (monotonic, arbitrary epoch)."""
        ...

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (never backwards)."""
        ...


class VirtualClock:
    """``time.monotonic()`` plus an offset: real time by default, jumps on ``advance()``."""

    def __init__(self) -> None:
        self._offset = 0.0

    @property
    def offset(self) -> float:
        """Total virtual time added so far, in seconds."""
        return self._offset

    def now(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        self._offset += seconds


class ManualClock:
    """A clock that stands still until ``advance()``: for unit tests of the state store."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        self._now += seconds
