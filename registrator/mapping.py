"""Container -> service registrations. Pure: no I/O, no logging, no clock.

`services_for` returns the registrations *and* everything it left out or changed, with a
reason code, so the shell can log it and `--dry-run` can show it. The conventions follow
gliderlabs/registrator (`SERVICE_*` env vars and labels, IDs `<node>:<container>:<port>[:udp]`),
with its known bugs fixed; README.md lists each difference.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from registrator.durations import parse_go_duration
from registrator.model import Check, Container, ContainerPort, ServiceInstance, Skip
from registrator.routing_hints import hint_tags
from registrator.settings import Settings

MAX_TAGS = 128
MAX_META = 64  # Consul's limit
_META_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NAME_BAD = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CHECK_GROUP = re.compile(r"check_(?:(\d+)_)?(.+)")
_CHECK_TYPES = ("http", "https", "cmd", "script", "ttl", "tcp", "grpc")  # registrator's precedence
_CHECK_FIELDS = frozenset(
    {
        *_CHECK_TYPES,
        "http_method",
        "https_method",
        "grpc_use_tls",
        "tls_skip_verify",
        "interval",
        "timeout",
        "initial_status",
        "deregister_after",
    }
)
_SPECIAL_KEYS = frozenset({"name", "id", "tags", "ignore", "network"})
_FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True, slots=True, kw_only=True)
class MappingPolicy:
    """The flags and host facts the mapping depends on."""

    node: str
    host_address: str
    ip: str | None = None
    internal: bool = False
    explicit: bool = False
    use_ip_from_label: str | None = None
    tags: tuple[str, ...] = ()
    port_env: tuple[str, ...] = ("PORT",)
    network: str | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, engine_name: str, host_address: str | None
    ) -> MappingPolicy:
        """The flags, plus what the shell learnt about the host."""
        return cls(
            node=settings.node or engine_name,
            host_address=settings.ip or host_address or "127.0.0.1",
            ip=settings.ip,
            internal=settings.internal,
            explicit=settings.explicit,
            use_ip_from_label=settings.use_ip_from_label,
            tags=settings.tags,
            port_env=settings.port_env,
            network=settings.network,
        )


@dataclass(frozen=True, slots=True)
class Mapped:
    instances: tuple[ServiceInstance, ...] = ()
    skipped: tuple[Skip, ...] = ()


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A port that may become a service, before the per-port keys are applied."""

    port: int  # the number in the service ID and in SERVICE_<port>_* keys
    protocol: str
    label: str | None  # from a `--port-env` glob capture: SERVER_HTTP_PORT -> "http"
    service_port: int  # what gets registered
    address: str  # "" until resolved (internal mode picks per network later)

    @property
    def spec(self) -> str:
        return f"{self.port}/{self.protocol}"


@dataclass(slots=True)
class _Acc:
    """Mutable accumulator local to one `services_for` call."""

    container: str
    skipped: list[Skip] = field(default_factory=list)

    def skip(
        self, reason: str, detail: str, port: str | None = None, sid: str | None = None
    ) -> None:
        """The container (port None) or one of its ports is not registered."""
        self.skipped.append(Skip(self.container, reason, detail, port, sid))

    def adjust(self, reason: str, detail: str, port: str, sid: str | None = None) -> None:
        """The service is registered, with something dropped or changed."""
        self.skipped.append(Skip(self.container, reason, detail, port, sid, adjusted=True))


def services_for(container: Container, policy: MappingPolicy) -> Mapped:
    """Every registration `container` yields under `policy`, and what was skipped, and why."""
    acc = _Acc(container.name)
    if not container.running:
        acc.skip("not_running", "the container is not running")
        return Mapped((), tuple(acc.skipped))

    keys = service_keys(container)
    try:
        label_ip = _ip_from_label(container, policy)
    except ValueError as exc:
        acc.skip("invalid_ip_label", str(exc))
        return Mapped((), tuple(acc.skipped))

    candidates, considered = _candidates(container, policy, acc)
    if not candidates:
        if not acc.skipped:
            acc.skip("no_ports", "the container exposes and publishes no ports")
        return Mapped((), tuple(acc.skipped))

    selectors = {str(c.port) for c in candidates} | {c.label for c in candidates if c.label}
    shared = {k: v for k, v in keys.items() if not _is_port_key(k, selectors)}
    tcp_ports = frozenset(c.port for c in candidates if c.protocol == "tcp")
    instances: list[ServiceInstance] = []
    seen_ids: set[str] = set()
    for cand in candidates:
        own = _port_keys(keys, cand)
        instance = _instance(
            container, policy, cand, shared, own, considered > 1, label_ip, tcp_ports, acc
        )
        if instance is None:
            continue
        if instance.id in seen_ids:
            acc.skip(
                "duplicate_id",
                "another port of this container has the same service ID",
                cand.spec,
                instance.id,
            )
            continue
        seen_ids.add(instance.id)
        instances.append(instance)
    return Mapped(tuple(instances), tuple(acc.skipped))


def service_keys(container: Container) -> dict[str, str]:
    """`SERVICE_*` from env vars, then labels (a label wins), prefix stripped, key lower-cased."""
    keys: dict[str, str] = {}
    for source in (container.env, container.labels):
        for name, value in source.items():
            if name.startswith("SERVICE_") and len(name) > len("SERVICE_"):
                keys[name[len("SERVICE_") :].lower()] = value
    return keys


def image_base_name(image: str) -> str:
    """`registry:5000/acme/web:1.2` -> `web`; `acme/web@sha256:...` -> `web`."""
    base = image.split("@", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return base.split(":", 1)[0]


# ---------------------------------------------------------------------------------------------
# Ports


def _candidates(
    container: Container, policy: MappingPolicy, acc: _Acc
) -> tuple[list[_Candidate], int]:
    """The ports to register, and how many ports count for `<name>-<port>` naming: an env port
    with a bad value still counts, so fixing it later does not rename the others."""
    if container.host_network:
        from_env, matched = _env_port_candidates(container, policy, acc)
        if matched:
            return from_env, matched
        address = policy.ip or policy.host_address
        exposed = [_Candidate(p.port, p.protocol, None, p.port, address) for p in container.ports]
        return exposed, len(exposed)

    out: list[_Candidate] = []
    for p in container.ports:
        if policy.internal:
            out.append(_Candidate(p.port, p.protocol, None, p.port, ""))
            continue
        binding = _pick_binding(p)
        if binding is None:
            acc.skip(
                "not_published",
                "exposed but not published on the host; use -internal "
                "to register the container's own address",
                f"{p.port}/{p.protocol}",
            )
            continue
        host_ip, host_port = binding
        address = policy.ip or (host_ip if not _unspecified(host_ip) else policy.host_address)
        out.append(_Candidate(p.port, p.protocol, None, host_port, address))
    return out, len(out)


def _pick_binding(port: ContainerPort) -> tuple[str, int] | None:
    """The first binding on a specific address, else the first binding (0.0.0.0 / ::)."""
    if not port.bindings:
        return None
    for b in port.bindings:
        if not _unspecified(b.host_ip):
            return b.host_ip, b.host_port
    return port.bindings[0].host_ip, port.bindings[0].host_port


def _env_port_candidates(
    container: Container, policy: MappingPolicy, acc: _Acc
) -> tuple[list[_Candidate], int]:
    """Ports named by env vars matching `--port-env`, and how many env vars matched."""
    patterns = [_glob_to_regex(p) for p in policy.port_env]
    matched = 0
    out: list[_Candidate] = []
    address = policy.ip or policy.host_address
    for var in sorted(container.env):
        for pattern in patterns:
            m = pattern.fullmatch(var)
            if m is None:
                continue
            matched += 1
            label = "_".join(g for g in m.groups() if g).lower() or None
            value = container.env[var].strip()
            number, _, proto = value.partition("/")
            proto = proto.lower() or "tcp"
            if not number.isdigit() or not 0 < int(number) < 65536 or proto not in ("tcp", "udp"):
                acc.skip(
                    "invalid_port",
                    f"{var}={value!r} is not a port number (1-65535, optionally /tcp or /udp)",
                    var,
                )
            else:
                out.append(_Candidate(int(number), proto, label, int(number), address))
            break
    return out, matched


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append("(.+?)")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts))


def _unspecified(ip: str) -> bool:
    return ip in ("", "0.0.0.0", "::")  # noqa: S104 - comparing, not binding


# ---------------------------------------------------------------------------------------------
# Per-port keys


def _selector(key: str) -> str | None:
    head, sep, _ = key.partition("_")
    return head if sep else None


def _is_port_key(key: str, selectors: set[str]) -> bool:
    head = _selector(key)
    return head is not None and (head.isdigit() or head in selectors)


def _port_keys(keys: Mapping[str, str], cand: _Candidate) -> dict[str, str]:
    """`SERVICE_<port>_<KEY>` and `SERVICE_<label>_<KEY>` for this candidate, prefix stripped."""
    own: dict[str, str] = {}
    for prefix in filter(None, (cand.label, str(cand.port))):
        for key, value in keys.items():
            if key.startswith(prefix + "_") and len(key) > len(prefix) + 1:
                own[key[len(prefix) + 1 :]] = value  # the port number wins: it is applied last
    return own


# ---------------------------------------------------------------------------------------------
# One service


def _instance(
    container: Container,
    policy: MappingPolicy,
    cand: _Candidate,
    shared: Mapping[str, str],
    own: Mapping[str, str],
    several: bool,
    label_ip: str | None,
    tcp_ports: frozenset[int],
    acc: _Acc,
) -> ServiceInstance | None:
    keys = {**shared, **own}
    spec = cand.spec
    if keys.get("ignore", "").strip().lower() not in _FALSE_WORDS:
        acc.skip("ignored", "SERVICE_IGNORE is set", spec)
        return None
    if policy.explicit and not keys.get("name", "").strip():
        acc.skip("explicit_only", "-explicit is set and no SERVICE_NAME names this service", spec)
        return None

    address = label_ip or cand.address
    if policy.internal and label_ip is None:
        picked = _internal_address(container, keys.get("network") or policy.network, spec, acc)
        if picked is None:
            return None
        address = picked
    if not address:
        acc.skip("no_address", "no address could be determined for this port", spec)
        return None

    name = _service_name(container, cand, keys, own, several, spec, acc)
    if name is None:
        return None
    sid = _service_id(container, policy, cand, keys, own, several)
    checks = _checks(keys, own, address, cand.service_port, spec, sid, acc)
    if checks is None:
        return None
    tags = _tags(keys.get("tags", ""), policy.tags, cand.protocol, spec, acc)
    if cand.protocol == "tcp":
        tags += _routing_tags(container, name, cand.port, tags, tcp_ports, spec, sid, acc)
    meta = _meta(keys, spec, acc)
    return ServiceInstance(
        id=sid,
        name=name,
        address=address,
        port=cand.service_port,
        protocol=cand.protocol,  # type: ignore[arg-type]
        tags=tags,
        meta=meta,
        checks=checks,
        container_id=container.id,
        container_name=container.name,
    )


def _service_name(
    container: Container,
    cand: _Candidate,
    keys: Mapping[str, str],
    own: Mapping[str, str],
    several: bool,
    spec: str,
    acc: _Acc,
) -> str | None:
    raw = keys.get("name") or ""
    if not raw:
        raw = image_base_name(container.image)
        if not raw or raw == "sha256":
            raw = container.name
    if several and "name" not in own:
        raw = f"{raw}-{cand.label or cand.port}"
    name = sanitise_name(raw)
    if not name:
        acc.skip("invalid_name", f"service name {raw!r} has no usable characters", spec)
        return None
    if name != raw:
        acc.adjust("name_sanitised", f"service name {raw!r} registered as {name!r}", spec)
    return name


def sanitise_name(raw: str) -> str:
    """Keep `[A-Za-z0-9._-]`: accents lose their marks, anything else becomes `-`."""
    decomposed = unicodedata.normalize("NFKD", raw)
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NAME_BAD.sub("-", ascii_only).strip("-.")


def _service_id(
    container: Container,
    policy: MappingPolicy,
    cand: _Candidate,
    keys: Mapping[str, str],
    own: Mapping[str, str],
    several: bool,
) -> str:
    udp = ":udp" if cand.protocol == "udp" else ""
    custom = keys.get("id", "").strip()
    if custom and "id" in own:
        return custom
    if custom:
        # One container-wide SERVICE_ID on several ports would collide; keep each port apart.
        return f"{custom}:{cand.port}{udp}" if several else custom
    return f"{policy.node}:{container.name}:{cand.port}{udp}"


def _internal_address(container: Container, wanted: str | None, spec: str, acc: _Acc) -> str | None:
    """The container's own IP: the named network, else the only one, else the primary one
    (`NetworkMode`), else the first by name. IPv4 first, IPv6 when the network has no IPv4."""
    nets = {n.name: n for n in container.networks}
    if wanted:
        net = nets.get(wanted)
        if net is None:
            acc.skip(
                "network_not_found",
                f"network {wanted!r} is not attached "
                f"(attached: {', '.join(sorted(nets)) or 'none'})",
                spec,
            )
            return None
    elif not nets:
        acc.skip("no_container_ip", "-internal is set but the container has no network", spec)
        return None
    else:
        primary = "bridge" if container.network_mode == "default" else container.network_mode
        net = nets.get(primary) or nets[min(nets)]
    address = net.ipv4 or net.ipv6
    if not address:
        acc.skip("no_container_ip", f"the container has no IP on network {net.name!r}", spec)
        return None
    return address


def _ip_from_label(container: Container, policy: MappingPolicy) -> str | None:
    """The `-useIpFromLabel` address, None when unused; ValueError when the label is no IP."""
    if not policy.use_ip_from_label:
        return None
    value = container.labels.get(policy.use_ip_from_label)
    if value is None:
        return None
    try:
        return str(ipaddress.ip_interface(value.strip()).ip)
    except ValueError:
        raise ValueError(f"label {policy.use_ip_from_label}={value!r} is not an IP") from None


# ---------------------------------------------------------------------------------------------
# Tags and meta


def split_tags(value: str) -> list[str]:
    """Comma list where `\\,` is a literal comma."""
    tags, current, chars = [], [], iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            current.append("," if nxt == "," else ch + nxt)
        elif ch == ",":
            tags.append("".join(current))
            current = []
        else:
            current.append(ch)
    tags.append("".join(current))
    return [t.strip() for t in tags]


def _tags(value: str, extra: Sequence[str], protocol: str, spec: str, acc: _Acc) -> tuple[str, ...]:
    out: dict[str, None] = {}
    bad = 0
    for tag in (*split_tags(value), *extra, *(["udp"] if protocol == "udp" else [])):
        if not tag:
            continue
        if _CONTROL.search(tag):
            bad += 1
            continue
        out[tag] = None
    if bad:
        acc.adjust("tag_invalid", f"{bad} tag(s) with control characters dropped", spec)
    tags = tuple(out)
    if len(tags) > MAX_TAGS:
        acc.adjust("tags_truncated", f"{len(tags)} tags given, the first {MAX_TAGS} kept", spec)
        tags = tags[:MAX_TAGS]
    return tags


def _routing_tags(
    container: Container,
    name: str,
    port: int,
    tags: Sequence[str],
    tcp_ports: frozenset[int],
    spec: str,
    sid: str,
    acc: _Acc,
) -> tuple[str, ...]:
    """Traefik, nginx-proxy and fabio routing hints as Consul tags in Traefik's grammar."""
    hints, problems = hint_tags(
        container.labels, container.env, service_name=name, port=port, tags=tags, ports=tcp_ports
    )
    for problem in problems:
        acc.adjust("routing_hint_invalid", problem, spec, sid)
    return tuple(t for t in hints if t not in tags)


def _meta(keys: Mapping[str, str], spec: str, acc: _Acc) -> tuple[tuple[str, str], ...]:
    meta: list[tuple[str, str]] = []
    for key, value in sorted(keys.items()):
        if key in _SPECIAL_KEYS or key.startswith("check_"):
            continue
        problem = _meta_problem(key, value)
        if problem:
            acc.adjust("meta_invalid", f"SERVICE_{key.upper()} not sent as Meta: {problem}", spec)
            continue
        meta.append((key, value))
    if len(meta) > MAX_META:
        dropped = ", ".join(k for k, _ in meta[MAX_META:])
        acc.adjust(
            "meta_truncated", f"Consul takes at most {MAX_META} Meta pairs; dropped {dropped}", spec
        )
        meta = meta[:MAX_META]
    return tuple(meta)


def _meta_problem(key: str, value: str) -> str | None:
    """Consul's Meta rules (structs.ValidateServiceMetadata), checked before Consul sees them."""
    if not _META_KEY.fullmatch(key):
        return "Key contains invalid characters"
    if len(key) > 128:
        return "Key is too long (limit: 128 characters)"
    if key.startswith("consul-"):
        return "Key prefix 'consul-' is reserved for internal use"
    if len(value) > 512:
        return "Value is too long (limit: 512 characters)"
    return None


# ---------------------------------------------------------------------------------------------
# Checks


def _checks(
    keys: Mapping[str, str],
    own: Mapping[str, str],
    address: str,
    port: int,
    spec: str,
    sid: str,
    acc: _Acc,
) -> tuple[Check, ...] | None:
    """One check per group: `SERVICE_CHECK_*` is group 0, `SERVICE_CHECK_<n>_*` group n.
    None when a check is invalid: registering without it would report a broken service healthy."""
    groups: dict[int, dict[str, str]] = {}
    own_types: dict[int, set[str]] = {}
    for key, value in keys.items():
        m = _CHECK_GROUP.fullmatch(key)
        if m is None or m.group(2) not in _CHECK_FIELDS:
            continue
        group = int(m.group(1) or 0)
        groups.setdefault(group, {})[m.group(2)] = value
        if key in own and m.group(2) in _CHECK_TYPES:
            own_types.setdefault(group, set()).add(m.group(2))
    checks: list[Check] = []
    for group in sorted(groups):
        fields = groups[group]
        # A type set for this port beats a container-wide type (registrator let http win).
        allowed = own_types.get(group) or set(_CHECK_TYPES)
        present = [t for t in _CHECK_TYPES if t in allowed and fields.get(t, "").strip()]
        if not present:
            continue
        if len(present) > 1:
            acc.adjust(
                "check_conflict",
                f"check group {group} sets {', '.join(present)}; "
                f"{present[0]} kept (use SERVICE_CHECK_<n>_* for more checks)",
                spec,
                sid,
            )
        check = _build_check(present[0], fields, address, port)
        if isinstance(check, str):
            acc.skip("invalid_check", f"check group {group}: {check}", spec, sid)
            return None
        checks.append(check)
    return tuple(checks)


def _build_check(kind: str, fields: Mapping[str, str], address: str, port: int) -> Check | str:
    """The check, or a sentence saying what is wrong with it."""
    value = fields[kind].strip()
    hostport = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    timing = {
        name: fields.get(name, "").strip() for name in ("interval", "timeout", "deregister_after")
    }
    if kind == "ttl":
        timing["ttl"] = value
    for name, text in timing.items():
        if text and not (parse_go_duration(text) or 0.0) > 0:
            return f"{name} {text!r} is not a positive Go duration such as 10s or 1m30s"
    status = fields.get("initial_status", "").strip().lower() or None
    if status not in (None, "passing", "warning", "critical"):
        return f"initial_status {status!r} is not passing, warning or critical"
    base = Check(
        interval=timing["interval"] or "10s",
        timeout=timing["timeout"] or None,
        status=status,
        deregister_after=timing["deregister_after"] or None,
    )
    skip_verify = _truthy(fields.get("tls_skip_verify", ""))
    if kind in ("http", "https"):
        path = value if value.startswith("/") else "/" + value
        if _CONTROL.search(path) or " " in path:
            return f"{kind} check path {value!r} contains spaces or control characters"
        method = fields.get(f"{kind}_method", "").strip().upper() or None
        return replace(
            base,
            http=f"{kind}://{hostport}{path}",
            method=method,
            tls_skip_verify=skip_verify and kind == "https",
        )
    if kind == "cmd":
        return "CHECK_CMD (progrium's check-cmd helper) is not supported; use CHECK_SCRIPT"
    if kind == "script":
        command = value.replace("$SERVICE_IP", address).replace("$SERVICE_PORT", str(port))
        try:
            return replace(base, args=tuple(shlex.split(command)))
        except ValueError as exc:
            return f"script {value!r} does not split with shell rules: {exc}"
    if kind == "ttl":
        return replace(base, ttl=value, interval=None)
    if kind == "tcp":
        return replace(base, tcp=hostport)
    service = "" if value.lower() in ("true", "1", "yes") else "/" + value
    grpc_tls = _truthy(fields.get("grpc_use_tls", ""))
    return replace(
        base, grpc=hostport + service, grpc_use_tls=grpc_tls, tls_skip_verify=skip_verify
    )


def _truthy(value: str) -> bool:
    return value.strip().lower() not in _FALSE_WORDS
