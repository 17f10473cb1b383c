"""The command line. The only place that turns errors into exit codes:
0 ok, 2 bad configuration, 3 start-up failure (the Docker engine or the registry)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from registrator.errors import ConfigError, DockerUnavailable, RegistratorError
from registrator.logs import configure_logging, get_logger
from registrator.settings import help_text, load_settings, version_text, wants_help, wants_version

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_STARTUP = 3


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if wants_help(args):
        sys.stdout.write(help_text())
        return EXIT_OK
    if wants_version(args):
        print(version_text())
        return EXIT_OK
    try:
        settings = load_settings(args, os.environ)
    except ConfigError as exc:
        print("registrator: invalid configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        print("see registrator --help", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_format, settings.log_level)
    log = get_logger()
    try:
        if settings.dry_run:
            from registrator.dry_run import dry_run

            _run(dry_run(settings, sys.stdout))
            return EXIT_OK
        from registrator.daemon import run_daemon

        _run(run_daemon(settings))
    except ConfigError as exc:
        print(f"registrator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except DockerUnavailable as exc:
        log.error("docker_unavailable", error=str(exc))
        return EXIT_STARTUP
    except RegistratorError as exc:
        log.error("startup_failed", error=str(exc), error_type=type(exc).__name__)
        return EXIT_STARTUP
    except KeyboardInterrupt:
        return 130
    return EXIT_OK


def _run(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when it is installed, else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
