"""Test-hook state: injected faults and the log of ``/v1`` requests."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Fault", "FaultTable", "RequestLog", "RequestRecord"]


@dataclass
class Fault:
    """Requests whose path starts with ``path`` (and method matches) get ``status``/``delay``.

    ``count`` limits how many requests are affected, ``until`` (clock time) for how long; with
    neither the fault stays until cleared. ``status`` ``None`` means "only delay".
    """

    id: int
    path: str = "/v1/"
    method: str | None = None
    status: int | None = 500
    body: str = "injected fault"
    remaining: int | None = None
    until: float | None = None
    delay: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultTable:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(
        self,
        *,
        path: str = "/v1/",
        method: str | None = None,
        status: int | None = 500,
        body: str = "injected fault",
        count: int | None = None,
        until: float | None = None,
        delay: float = 0.0,
    ) -> Fault:
        fault = Fault(
            id=next(self._ids),
            path=path,
            method=method.upper() if method else None,
            status=status,
            body=body,
            remaining=count,
            until=until,
            delay=delay,
        )
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        self._faults.clear()

    def active(self, now: float) -> list[Fault]:
        self._faults = [
            f
            for f in self._faults
            if (f.remaining is None or f.remaining > 0) and (f.until is None or f.until > now)
        ]
        return list(self._faults)

    def take(self, method: str, path: str, now: float) -> Fault | None:
        """The first live fault matching the request; consumes one of its ``count``."""
        for fault in self.active(now):
            if not path.startswith(fault.path):
                continue
            if fault.method is not None and fault.method != method.upper():
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
            return fault
        return None


@dataclass
class RequestRecord:
    """One logged ``/v1`` request. The token's value is never kept, only whether one was sent."""

    seq: int
    time: float
    method: str
    path: str
    query: Mapping[str, list[str]]
    token: bool
    client: str
    user_agent: str
    status: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("extra")
        out["query"] = dict(self.query)
        return out


class RequestLog:
    def __init__(self, maxlen: int = 10_000) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=maxlen)
        self._seq = itertools.count(1)

    def add(
        self,
        *,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        token: bool,
        client: str,
        user_agent: str,
    ) -> RequestRecord:
        record = RequestRecord(
            seq=next(self._seq),
            time=time.time(),
            method=method,
            path=path,
            query=query,
            token=token,
            client=client,
            user_agent=user_agent,
        )
        self._records.append(record)
        return record

    def entries(self, since: int = 0) -> list[RequestRecord]:
        return [r for r in self._records if r.seq > since]

    def clear(self) -> None:
        self._records.clear()
