"""``python -m tests.consul_emulator --port PORT [--acl-master-token TOKEN]``

Prints ``consul-emulator listening on http://127.0.0.1:PORT`` once it accepts connections (so a
parent process can wait for that line), and exits 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from .acl import AclRule, RuleSpec
from .emulator import ConsulEmulator, is_loopback
from .gotypes import GoDurationError, parse_duration


def _duration(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_duration(text) / 1e9
    except GoDurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _token(text: str) -> tuple[str, tuple[RuleSpec, ...]]:
    """``SECRET=resource:name:policy[,resource:name:policy...]``"""
    secret, sep, rules_text = text.partition("=")
    if not sep or not secret:
        raise argparse.ArgumentTypeError("expected SECRET=resource:name:policy[,...]")
    rules: list[RuleSpec] = []
    for part in filter(None, rules_text.split(",")):
        fields = part.split(":")
        if len(fields) != 3:
            raise argparse.ArgumentTypeError(f"bad rule {part!r}: expected resource:name:policy")
        rule: RuleSpec = (fields[0], fields[1], fields[2])
        try:
            AclRule.parse(rule)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        rules.append(rule)
    return secret, tuple(rules)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.consul_emulator", description="Consul HTTP API emulator for tests."
    )
    p.add_argument("--port", type=int, default=8500, help="port to listen on (0: pick a free one)")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--acl-master-token", default=None, help="enable ACLs (default deny)")
    p.add_argument(
        "--acl-token",
        type=_token,
        action="append",
        default=[],
        metavar="SECRET=RULES",
        help="extra token, e.g. web=service_prefix:web:write,node_prefix::read (repeatable)",
    )
    p.add_argument("--node-name", default="node1")
    p.add_argument("--datacenter", default="dc1")
    p.add_argument("--advertise-addr", default="127.0.0.1")
    p.add_argument("--check-reap-interval", type=_duration, default=30.0, metavar="DURATION")
    p.add_argument("--dcsa-min", type=_duration, default=60.0, metavar="DURATION")
    p.add_argument("--no-consul-service", action="store_true", help="omit the 'consul' service")
    return p


async def _serve(args: argparse.Namespace) -> None:
    emulator = ConsulEmulator(
        host=args.host,
        node_name=args.node_name,
        datacenter=args.datacenter,
        advertise_addr=args.advertise_addr,
        acl_master_token=args.acl_master_token,
        acl_tokens=dict(args.acl_token),
        check_reap_interval=args.check_reap_interval,
        dcsa_min=args.dcsa_min,
        include_consul_service=not args.no_consul_service,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await emulator.start(args.port)
        print(f"consul-emulator listening on {emulator.url}", flush=True)
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await emulator.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not is_loopback(args.host):
        print(f"error: refusing to listen on non-loopback host {args.host!r}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(args))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
