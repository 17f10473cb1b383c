"""Go duration strings ("10s", "1m30s", "500ms"), the form Consul accepts for check timings."""

from __future__ import annotations

import re

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # Go accepts both micro signs
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_UNIT = "|".join(sorted((re.escape(u) for u in _UNIT_SECONDS), key=len, reverse=True))
_WHOLE = re.compile(rf"[-+]?(?:{_NUMBER}(?:{_UNIT}))+")
_PART = re.compile(rf"({_NUMBER})({_UNIT})")


def parse_go_duration(text: str) -> float | None:
    """Seconds for a Go duration string, or None when Go's time.ParseDuration would refuse it."""
    if text == "0":
        return 0.0
    if not _WHOLE.fullmatch(text):
        return None
    sign = -1.0 if text.startswith("-") else 1.0
    return sign * sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text))
