"""A small static ACL system: a management token plus optional tokens with simple rules.

Rules are ``(resource, name, policy)`` triples, with resource one of ``service``, ``node``,
``agent`` (exact name) or ``service_prefix``, ``node_prefix``, ``agent_prefix``, and policy one
of ``read``, ``write``, ``deny``. An exact rule beats prefix rules and the longest prefix wins;
with no matching rule the default policy (deny) applies. The key ``"anonymous"`` in the token
table sets the rules of the anonymous token (used when a request carries no token).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .gotypes import go_quote

__all__ = [
    "ANONYMOUS_ACCESSOR_ID",
    "Acl",
    "AclNotFoundError",
    "AclRule",
    "Identity",
    "PermissionDeniedError",
    "RuleSpec",
    "accessor_id",
]

RuleSpec = tuple[str, str, str]
ANONYMOUS_ACCESSOR_ID = "00000000-0000-0000-0000-000000000002"
ANONYMOUS = "anonymous"
_RESOURCES = frozenset({"service", "node", "agent"})
_POLICIES = frozenset({"read", "write", "deny"})


class AclNotFoundError(PermissionError):
    """The token is not known (HTTP 403 ``ACL not found``)."""

    def __str__(self) -> str:
        return "ACL not found"


class PermissionDeniedError(PermissionError):
    """The token lacks a permission (HTTP 403 with Consul's text)."""


@dataclass(frozen=True)
class AclRule:
    resource: str
    name: str
    policy: str
    prefix: bool

    @classmethod
    def parse(cls, spec: RuleSpec) -> AclRule:
        resource, name, policy = spec
        prefix = resource.endswith("_prefix")
        base = resource.removesuffix("_prefix")
        if base not in _RESOURCES:
            raise ValueError(f"unknown ACL resource {resource!r}")
        if policy not in _POLICIES:
            raise ValueError(f"unknown ACL policy {policy!r}")
        return cls(base, name, policy, prefix)


def accessor_id(token: str) -> str:
    """The AccessorID the emulator reports for a secret (stable, derived from it)."""
    if token == ANONYMOUS:
        return ANONYMOUS_ACCESSOR_ID
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "consul-emulator-token:" + token))


@dataclass(frozen=True)
class Identity:
    """Who a request acts as."""

    token_sent: bool
    anonymous: bool
    accessor_id: str
    management: bool
    rules: tuple[AclRule, ...] = ()


class Acl:
    """Token resolution and rule evaluation; ``enabled`` is False without a master token."""

    def __init__(
        self,
        master_token: str | None = None,
        tokens: Mapping[str, Sequence[RuleSpec]] | None = None,
    ) -> None:
        self.master_token = master_token or None
        self._tokens = {
            secret: tuple(AclRule.parse(r) for r in rules)
            for secret, rules in (tokens or {}).items()
        }

    @property
    def enabled(self) -> bool:
        return self.master_token is not None

    @property
    def default_policy(self) -> str:
        return "deny" if self.enabled else "allow"

    def resolve(self, token: str) -> Identity:
        """Map a secret (``""`` = none sent) to an identity; unknown secrets raise."""
        sent = token != ""
        if not self.enabled:
            return Identity(sent, not sent, ANONYMOUS_ACCESSOR_ID, management=True)
        if token in ("", ANONYMOUS):
            rules = self._tokens.get(ANONYMOUS, ())
            return Identity(sent, True, ANONYMOUS_ACCESSOR_ID, management=False, rules=rules)
        if token == self.master_token:
            return Identity(True, False, accessor_id(token), management=True)
        if token in self._tokens:
            return Identity(True, False, accessor_id(token), False, self._tokens[token])
        raise AclNotFoundError

    @staticmethod
    def allowed(ident: Identity, resource: str, name: str, access: str) -> bool:
        if ident.management:
            return True
        mine = [r for r in ident.rules if r.resource == resource]
        exact = [r for r in mine if not r.prefix and r.name == name]
        if exact:
            policy = exact[-1].policy
        else:
            prefixes = [r for r in mine if r.prefix and name.startswith(r.name)]
            if not prefixes:
                return False
            policy = max(prefixes, key=lambda r: len(r.name)).policy
        if policy == "write":
            return True
        return policy == "read" and access == "read"

    def require(self, ident: Identity, resource: str, name: str, access: str) -> None:
        if self.allowed(ident, resource, name, access):
            return
        perm = f"'{resource}:{access}'"
        if ident.anonymous:
            raise PermissionDeniedError(
                f"Permission denied: anonymous token lacks permission {perm} on {go_quote(name)}. "
                "The anonymous token is used implicitly when a request does not specify a token."
            )
        raise PermissionDeniedError(
            f"Permission denied: token with AccessorID '{ident.accessor_id}' lacks permission "
            f"{perm} on {go_quote(name)}"
        )
