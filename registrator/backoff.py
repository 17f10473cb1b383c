"""Capped exponential backoff with jitter (pure: the caller sleeps)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    first: float = 0.5
    cap: float = 30.0
    jitter: float = 0.2  # +-20 %, so a fleet restarted together does not retry in step
    _next: float = field(default=0.0, init=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def next(self) -> float:
        self._next = self.first if self._next == 0 else min(self._next * 2, self.cap)
        return self._next * self._rng.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        self._next = 0.0
