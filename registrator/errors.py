"""The one error hierarchy of the daemon. Only `registrator.cli.main` turns these into exit codes.

RegistratorError
├── ConfigError            bad flags, env vars or URI: exit 2, every problem listed
├── InspectError           a container's inspect JSON has an unexpected shape (it is skipped)
├── DockerUnavailable      the engine does not answer (exit 3 at start-up, retried later)
│   └── DockerStreamClosed the event stream ended or failed
└── BackendError           the registry refused or failed a call
    ├── BackendUnavailable 5xx, refused connection, timeout: retried with backoff
    └── BackendRejected    4xx: logged with the registry's text, not retried in a loop
"""

from __future__ import annotations

from collections.abc import Sequence


class RegistratorError(Exception):
    """Root of every error the daemon raises on purpose."""


class ConfigError(RegistratorError):
    """The settings cannot be used; `problems` holds every reason, one sentence each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class StartupError(RegistratorError):
    """Something the daemon needs at start-up is not available (a port is taken...)."""


class InspectError(RegistratorError):
    """A container's inspect JSON lacks something the parser needs."""


class DockerUnavailable(RegistratorError):
    """The Docker engine cannot be reached or answered with an error."""


class DockerStreamClosed(DockerUnavailable):
    """The engine's event stream ended; the caller reconnects and resyncs."""


class BackendError(RegistratorError):
    """A registry call failed."""


class BackendUnavailable(BackendError):
    """The registry did not answer or answered 5xx; worth retrying."""


class BackendRejected(BackendError):
    """The registry answered 4xx; retrying the same request will not help."""

    def __init__(self, status: int, text: str) -> None:
        self.status = status
        self.text = text
        super().__init__(f"{status}: {text}")
