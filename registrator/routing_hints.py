"""Routing hints -> Consul tags in Traefik's grammar. Pure: stdlib and `registrator.model` only.

The register role calls `hint_tags` once per registered TCP port. It reads three dialects and
returns ONE canonical form, the tag grammar of Traefik's Consul Catalog provider, so that a stock
Traefik reading our registrations routes exactly what our own proxy writer routes:

- Traefik Docker-provider labels `traefik.*` (same key grammar; `traefik.docker.*` is dropped and
  `loadbalancer.server.port` selects the container port instead of being copied, because in
  Consul it would override the registered, published port);
- nginx-proxy `VIRTUAL_HOST` (comma list, `*.` wildcards), `VIRTUAL_PORT`, `VIRTUAL_PATH`,
  from the environment (which wins) or labels;
- fabio `urlprefix-host/path` and `urlprefix-:PORT proto=tcp` tags (from SERVICE_TAGS).

Every host and path is validated; anything that could inject proxy configuration (newlines, `#`,
quotes, braces, backticks, Go-template `{{`) is rejected with a one-sentence problem and dropped.

The rule grammar (a subset of Traefik v3 that both renderers can express) lives here too, so the
proxy writer parses tags read back from the registry with the very same code:
`Host`, `HostRegexp` (only the `*.domain` form this module writes), `Path`, `PathPrefix`,
`HostSNI`, combined with `&&`, `||` and parentheses. v2's multi-value `Host(`a`, `b`)` is
accepted and written back as `Host(`a`) || Host(`b`)`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

MatcherKind = Literal["host", "host_suffix", "path", "path_prefix", "host_sni"]

MAX_RULE_LENGTH = 4096
MAX_TERMS = 64  # conjunctions after expansion to disjunctive normal form
MAX_VALUE_LENGTH = 1024
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PATH = re.compile(r"/(?:[A-Za-z0-9\-._~!&()*+,;=:@/]|%[0-9A-Fa-f]{2})*")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,127}")
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}(?:@[a-z0-9][a-z0-9_-]{0,63})?")
_KEY_SEGMENT = re.compile(r"[a-z0-9_-]+")
_UNSAFE_VALUE = re.compile(r"[\x00-\x1f\x7f-\x9f`]|\{\{|\}\}")
_UNSAFE_RULE = re.compile(r"[\x00-\x1f\x7f-\x9f]|\{\{|\}\}")
_TCP_ENTRYPOINT = re.compile(r"[A-Za-z0-9_-]*-(\d{1,5})")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class RuleError(ValueError):
    """A rule that does not parse, or that uses something outside the supported subset."""


# ---------------------------------------------------------------------------------------------
# Hosts, paths, names


def host_problem(raw: str, *, wildcard: bool = True) -> str | None:
    """None when `raw` is an RFC 1123 host name (optionally `*.name`), else why it is not."""
    host = raw.lower()
    if wildcard and host.startswith("*."):
        host = host[2:]
    if not host or len(host) > 253:
        return f"host {raw!r} is empty or longer than 253 characters"
    if not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
        return f"host {raw!r} is not an RFC 1123 host name"
    return None


def path_problem(raw: str) -> str | None:
    """None when `raw` is a safe URL path (starts with /, RFC 3986 path characters only, no
    quotes, `$`, whitespace, braces, backticks or `#`), else why it is not."""
    if len(raw) > MAX_VALUE_LENGTH:
        return f"path {raw[:40]!r}... is longer than {MAX_VALUE_LENGTH} characters"
    if not raw.startswith("/"):
        return f"path {raw!r} does not start with /"
    if not _PATH.fullmatch(raw):
        return (
            f"path {raw!r} holds characters that are not allowed (whitespace, quotes, $, "
            "backticks, braces, #, control characters or a bad %-escape)"
        )
    return None


def normalize_name(name: str) -> str:
    """Traefik's `provider.Normalize`: runs of non-alphanumerics become one dash; lower-cased."""
    return "-".join(p for p in re.split(r"[^0-9a-zA-Z]+", name) if p).lower()


def value_problem(key: str, value: str) -> str | None:
    """Generic tag values: no control characters, backticks or template braces."""
    if len(value) > MAX_VALUE_LENGTH:
        return f"{key}: the value is longer than {MAX_VALUE_LENGTH} characters"
    if _UNSAFE_VALUE.search(value):
        return f"{key}: the value holds control characters, backticks, '{{{{' or '}}}}'"
    return None


def tcp_entrypoint_port(name: str) -> int | None:
    """The port a TCP entry point name carries by convention (`tcp-5432`, `pg-5432`)."""
    m = _TCP_ENTRYPOINT.fullmatch(name)
    if m is None:
        return None
    port = int(m.group(1))
    return port if 0 < port < 65536 else None


# ---------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True, slots=True, order=True)
class Matcher:
    kind: MatcherKind
    value: str  # host (lower-case), ".suffix" for host_suffix, path, or "*" / host for HostSNI

    def render(self) -> str:
        if self.kind == "host":
            return f"Host(`{self.value}`)"
        if self.kind == "host_suffix":
            return f"HostRegexp(`^.+{re.escape(self.value)}$`)"
        if self.kind == "path":
            return f"Path(`{self.value}`)"
        if self.kind == "path_prefix":
            return f"PathPrefix(`{self.value}`)"
        return f"HostSNI(`{self.value}`)"


Term = tuple[Matcher, ...]  # a conjunction
Dnf = tuple[Term, ...]  # a disjunction of conjunctions

_TOKEN = re.compile(r"\s*(?:(&&|\|\|)|([()!,])|([A-Za-z]+)|`([^`]*)`|\"([^\"\\]*)\")")
_SUFFIX_REGEXP = re.compile(r"\^\.\+((?:\\\.[a-z0-9-]+)+)\$")


def _tokens(rule: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    rule = rule.rstrip()
    while pos < len(rule):
        m = _TOKEN.match(rule, pos)
        if m is None or m.end() == pos:
            raise RuleError(f"unexpected text at {rule[pos : pos + 20]!r}")
        op, punct, ident, tick, quoted = m.groups()
        if op:
            out.append(("op", op))
        elif punct:
            out.append(("punct", punct))
        elif ident:
            out.append(("ident", ident))
        else:
            out.append(("str", tick if tick is not None else quoted))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], protocol: str) -> None:
        self.tokens = tokens
        self.i = 0
        self.protocol = protocol
        self.multi = False  # a v2-style matcher with several values was seen

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str, value: str | None = None) -> str:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            want = value or kind
            raise RuleError(f"expected {want!r}, found {tok[1] if tok else 'the end'!r}")
        self.i += 1
        return tok[1]

    def expr(self) -> Dnf:
        terms = list(self.conj())
        while self.peek() == ("op", "||"):
            self.i += 1
            terms.extend(self.conj())
            if len(terms) > MAX_TERMS:
                raise RuleError(f"the rule expands to more than {MAX_TERMS} alternatives")
        return tuple(terms)

    def conj(self) -> Dnf:
        result: Dnf = self.factor()
        while self.peek() == ("op", "&&"):
            self.i += 1
            right = self.factor()
            result = tuple(a + b for a in result for b in right)
            if len(result) > MAX_TERMS:
                raise RuleError(f"the rule expands to more than {MAX_TERMS} alternatives")
        return result

    def factor(self) -> Dnf:
        tok = self.peek()
        if tok == ("punct", "("):
            self.i += 1
            inner = self.expr()
            self.take("punct", ")")
            return inner
        if tok == ("punct", "!"):
            raise RuleError("negation (!) is not supported")
        name = self.take("ident")
        self.take("punct", "(")
        args = [self.take("str")]
        while self.peek() == ("punct", ","):
            self.i += 1
            args.append(self.take("str"))
            self.multi = True
        self.take("punct", ")")
        return tuple((self.matcher(name, arg),) for arg in args)

    def matcher(self, name: str, arg: str) -> Matcher:
        http = self.protocol == "http"
        if name == "Host" and http:
            if problem := host_problem(arg, wildcard=False):
                raise RuleError(problem)
            return Matcher("host", arg.lower())
        if name == "HostRegexp" and http:
            m = _SUFFIX_REGEXP.fullmatch(arg)
            if m is None:
                raise RuleError(
                    f"HostRegexp(`{arg}`) is not supported: only the form "
                    r"^.+\.example\.com$ (a *.example.com wildcard) is"
                )
            suffix = m.group(1).replace("\\.", ".")
            if problem := host_problem(suffix[1:], wildcard=False):
                raise RuleError(problem)
            return Matcher("host_suffix", suffix)
        if name in ("Path", "PathPrefix") and http:
            if problem := path_problem(arg):
                raise RuleError(problem)
            return Matcher("path" if name == "Path" else "path_prefix", arg)
        if name == "HostSNI" and not http:
            if arg != "*" and (problem := host_problem(arg, wildcard=False)):
                raise RuleError(problem)
            return Matcher("host_sni", arg.lower())
        raise RuleError(f"matcher {name} is not supported in {self.protocol.upper()} rules")


def parse_rule(rule: str, protocol: Literal["http", "tcp"] = "http") -> Dnf:
    """A rule as disjunctive normal form; RuleError says why it cannot be used."""
    return _parse(rule, protocol)[0]


@lru_cache(maxsize=8192)  # pure: catalogs repeat the same rules on every read
def _parse(rule: str, protocol: Literal["http", "tcp"]) -> tuple[Dnf, bool]:
    if len(rule) > MAX_RULE_LENGTH:
        raise RuleError(f"the rule is longer than {MAX_RULE_LENGTH} characters")
    if _UNSAFE_RULE.search(rule):
        raise RuleError("the rule holds control characters or template braces")
    parser = _Parser(_tokens(rule), protocol)
    if parser.peek() is None:
        raise RuleError("the rule is empty")
    dnf = parser.expr()
    if parser.peek() is not None:
        raise RuleError(f"unexpected {parser.peek()[1]!r} after the rule")  # type: ignore[index]
    return tuple(dict.fromkeys(tuple(dict.fromkeys(term)) for term in dnf)), parser.multi


def render_rule(dnf: Dnf) -> str:
    """The canonical v3 spelling: `A && B` for one term, `(A && B) || C` for several."""
    parts = []
    for term in dnf:
        text = " && ".join(m.render() for m in term)
        parts.append(f"({text})" if len(term) > 1 and len(dnf) > 1 else text)
    return " || ".join(parts)


def canonical_rule(rule: str, protocol: Literal["http", "tcp"] = "http") -> str:
    """The rule as written when it is valid v3 syntax; v2 multi-value matchers are rewritten."""
    dnf, multi = _parse(rule, protocol)
    return render_rule(dnf) if multi else " ".join(rule.split())


# ---------------------------------------------------------------------------------------------
# Tag grammar


def split_tag(tag: str) -> tuple[str, str] | None:
    """`traefik.a.b=value` -> ("traefik.a.b", "value") with the key lower-cased (Traefik's keys
    are case-insensitive; the first `=` splits). None for tags outside the `traefik.` prefix."""
    key, sep, value = tag.partition("=")
    key = key.strip().lower()
    if not sep or not key.startswith("traefik."):
        return None
    return key, value.strip()


def parse_bool(value: str) -> bool | None:
    text = value.strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


_LIST_KEYS = {"entrypoints": "entry point", "middlewares": "middleware"}


@lru_cache(maxsize=16384)
def check_key_value(key: str, value: str) -> tuple[str | None, str | None]:
    """(canonical value, None) for a usable `traefik.*` key/value, or (None, problem)."""
    parts = key.split(".")
    if not all(_KEY_SEGMENT.fullmatch(p) for p in parts[1:]) or len(parts) < 2:
        return None, f"{key}: the key holds characters other than a-z, 0-9, _ and -"
    attr = ".".join(parts[4:])
    kind = parts[2] if len(parts) > 2 else ""
    if len(parts) >= 4 and parts[1] in ("http", "tcp", "udp") and not _NAME.fullmatch(parts[3]):
        return None, f"{key}: {parts[3]!r} is not a usable name"
    if kind == "routers" and attr == "rule" and parts[1] in ("http", "tcp"):
        try:
            return canonical_rule(value, "http" if parts[1] == "http" else "tcp"), None
        except RuleError as exc:
            return None, f"{key}: {exc}"
    if problem := value_problem(key, value):
        return None, problem
    if attr in _LIST_KEYS and kind == "routers":
        items = [v.strip() for v in value.split(",") if v.strip()]
        bad = [v for v in items if not _REF.fullmatch(v)]
        if bad or not items:
            return None, f"{key}: {bad[0] if bad else value!r} is not a usable {_LIST_KEYS[attr]}"
        return ",".join(items), None
    if attr == "service" and kind == "routers":
        if not _REF.fullmatch(value):
            return None, f"{key}: {value!r} is not a usable service name"
        return value, None
    if attr == "priority" or attr.endswith("server.port"):
        if not value.isdigit() or (attr != "priority" and not 0 < int(value) < 65536):
            return None, f"{key}: {value!r} is not a number in range"
        return str(int(value)), None
    if key == "traefik.enable" or attr in ("tls", "loadbalancer.passhostheader"):
        flag = parse_bool(value)
        if flag is None:
            return None, f"{key}: {value!r} is not true or false"
        return "true" if flag else "false", None
    if attr == "loadbalancer.server.scheme" and value.lower() not in ("http", "https", "h2c"):
        return None, f"{key}: {value!r} is not http, https or h2c"
    if attr == "loadbalancer.healthcheck.path" and (problem := path_problem(value)):
        return None, f"{key}: {problem}"
    return value, None


# ---------------------------------------------------------------------------------------------
# Hints -> tags


@dataclass(frozen=True, slots=True)
class _Route:
    hosts: tuple[Matcher, ...]  # host / host_suffix matchers, OR-ed; () = any host
    path: str | None  # PathPrefix; None = any path

    def rule(self) -> str:
        path = None if self.path in (None, "/") else Matcher("path_prefix", self.path or "/")
        hosts = " || ".join(h.render() for h in self.hosts)
        if path is None:
            return hosts or "PathPrefix(`/`)"
        if not hosts:
            return path.render()
        return (
            f"({hosts}) && {path.render()}"
            if len(self.hosts) > 1
            else f"{hosts} && {path.render()}"
        )


def _host_matcher(raw: str) -> Matcher:
    host = raw.lower()
    if host.startswith("*."):
        return Matcher("host_suffix", host[1:])
    return Matcher("host", host)


def hint_tags(
    labels: Mapping[str, str],
    env: Mapping[str, str],
    *,
    service_name: str,
    port: int,
    tags: Sequence[str] = (),
    ports: Collection[int] = (),
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(tags in Traefik's Consul Catalog grammar, problems) for the registration of the
    container port `port` (the port in the service ID) named `service_name`.

    `ports` lists all the container's TCP ports: hints without a port selector (VIRTUAL_PORT,
    `loadbalancer.server.port`) apply to the lowest of them, as Traefik does; when it is empty,
    they apply to `port`. `tags` are the SERVICE_TAGS tags: fabio `urlprefix-` tags become
    routes; `traefik.*` ones are already in the registration and are only checked."""
    problems: list[str] = []
    default_port = min(ports) if ports else port
    is_default = port == default_port
    name = normalize_name(service_name) or "service"

    for tag in tags:
        kv = split_tag(tag)
        if kv is not None:
            _, problem = check_key_value(*kv)
            if problem:
                problems.append(f"SERVICE_TAGS {problem}")

    traefik = {k.lower(): v for k, v in labels.items() if k.lower().startswith("traefik.")}
    enable = parse_bool(traefik.pop("traefik.enable", "true"))
    if enable is False:
        return ("traefik.enable=false",), tuple(problems)
    out = _from_traefik_labels(traefik, port, is_default, problems)

    routes: list[_Route] = []
    tcp_ports: list[int] = []
    nginx = _nginx_route(labels, env, port, default_port, is_default, problems)
    if nginx is not None:
        routes.append(nginx)
    if is_default:
        for tag in tags:
            if tag.startswith("urlprefix-"):
                parsed = _fabio_route(tag, problems)
                if isinstance(parsed, int):
                    tcp_ports.append(parsed)
                elif parsed is not None:
                    routes.append(parsed)

    taken = {k.split(".")[3] for k in out if k.startswith("traefik.http.routers.")}
    unique = sorted(set(routes), key=lambda r: (r.path or "", [h.value for h in r.hosts]))
    for index, route in enumerate(unique, start=1):
        router = name if len(unique) == 1 else f"{name}-{index}"
        while router in taken:
            router += "-hint"
        taken.add(router)
        out[f"traefik.http.routers.{router}.rule"] = route.rule()
    for tcp_port in sorted(set(tcp_ports)):
        router = f"{name}-tcp-{tcp_port}"
        out[f"traefik.tcp.routers.{router}.rule"] = "HostSNI(`*`)"
        out[f"traefik.tcp.routers.{router}.entrypoints"] = f"tcp-{tcp_port}"
    if out and any(".routers." in k for k in out):
        out.setdefault("traefik.enable", "true")
    return tuple(sorted(f"{k}={v}" for k, v in out.items())), tuple(problems)


def _from_traefik_labels(
    labels: Mapping[str, str], port: int, is_default: bool, problems: list[str]
) -> dict[str, str]:
    """The Docker-provider labels that concern this port, checked, in Consul grammar."""
    sections: dict[tuple[str, str, str], dict[str, str]] = {}  # (proto, kind, name) -> attrs
    generic: dict[str, str] = {}
    for key, value in sorted(labels.items()):
        parts = key.split(".")
        if len(parts) > 1 and parts[1] == "docker":
            continue  # Docker-provider settings (network, lbswarm): meaningless in Consul
        if len(parts) >= 5 and parts[1] in ("http", "tcp", "udp"):
            sections.setdefault((parts[1], parts[2], parts[3]), {})[".".join(parts[4:])] = value
        else:
            generic[key] = value

    def service_port(proto: str, svc: str) -> int | None:
        raw = sections.get((proto, "services", svc), {}).get("loadbalancer.server.port")
        return int(raw) if raw is not None and raw.strip().isdigit() else None

    def applies(proto: str, svc: str | None) -> bool:
        wanted = service_port(proto, svc) if svc is not None else None
        return port == wanted if wanted is not None else is_default

    out: dict[str, str] = {}
    routed = False
    for (proto, kind, name), attrs in sorted(sections.items()):
        if kind == "routers":
            target = attrs.get("service")
            if target is None:
                own = [n for (p, k, n) in sections if p == proto and k == "services"]
                target = own[0] if len(own) == 1 else None
            if not applies(proto, target if target and "@" not in target else None):
                continue
        elif kind == "services" and not applies(proto, name):
            continue
        emitted = _checked_section(f"traefik.{proto}.{kind}.{name}", attrs, problems)
        if kind == "services":
            emitted.pop(f"traefik.{proto}.services.{name}.loadbalancer.server.port", None)
        if kind == "routers" and emitted:
            routed = True
        out.update(emitted)
    if not routed:
        # middlewares and other settings travel only with a router of this port
        return {k: v for k, v in out.items() if ".routers." in k or ".services." in k}
    for key, value in generic.items():
        canonical, problem = check_key_value(key, value)
        if problem:
            problems.append(f"label {problem}")
        elif canonical is not None:
            out[key] = canonical
    return out


def _checked_section(prefix: str, attrs: Mapping[str, str], problems: list[str]) -> dict[str, str]:
    """All keys of one router/service/middleware, or none when a router's rule is unusable."""
    out: dict[str, str] = {}
    for attr, value in sorted(attrs.items()):
        key = f"{prefix}.{attr}"
        canonical, problem = check_key_value(key, value)
        if problem:
            problems.append(f"label {problem}")
            if ".routers." in prefix:  # a router is used whole or not at all (no lost auth)
                problems.append(f"label {prefix}: the router was dropped")
                return {}
            continue
        out[key] = canonical or ""
    return out


def _nginx_route(
    labels: Mapping[str, str],
    env: Mapping[str, str],
    port: int,
    default_port: int,
    is_default: bool,
    problems: list[str],
) -> _Route | None:
    def get(name: str) -> str | None:
        value = env.get(name, labels.get(name))
        return None if value is None else value.strip()

    raw_hosts = get("VIRTUAL_HOST")
    if not raw_hosts:
        return None
    raw_port = get("VIRTUAL_PORT")
    if raw_port:
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            problems.append(f"VIRTUAL_PORT {raw_port!r} is not a port number; hint ignored")
            return None
        if int(raw_port) != port:
            return None
    elif not is_default:
        return None
    proto = (get("VIRTUAL_PROTO") or "http").lower()
    if proto != "http":
        problems.append(f"VIRTUAL_PROTO {proto!r} is not supported (only http); hint ignored")
        return None
    hosts: list[Matcher] = []
    for raw in raw_hosts.split(","):
        host = raw.strip()
        if not host:
            continue
        if host.startswith("~"):
            problems.append(f"VIRTUAL_HOST {host!r}: regular expressions are not supported")
        elif problem := host_problem(host):
            problems.append(f"VIRTUAL_HOST {problem}")
        else:
            hosts.append(_host_matcher(host))
    if not hosts:
        return None
    path = get("VIRTUAL_PATH") or None
    if path is not None and (problem := path_problem(path)):
        problems.append(f"VIRTUAL_PATH {problem}; hint ignored")
        return None
    return _Route(tuple(dict.fromkeys(hosts)), path)


def _fabio_route(tag: str, problems: list[str]) -> _Route | int | None:
    """A fabio `urlprefix-` tag as an HTTP route, or a TCP listen port, or None (problem)."""
    words = tag[len("urlprefix-") :].split()
    if not words:
        problems.append(f"fabio tag {tag!r} has no route")
        return None
    route, *options = words
    opts: dict[str, str] = {}
    for opt in options:
        key, sep, value = opt.partition("=")
        if not sep or key not in ("proto",):
            problems.append(f"fabio tag {tag!r}: option {opt!r} is not supported; route ignored")
            return None
        opts[key] = value.lower()
    proto = opts.get("proto", "http")
    if proto == "tcp":
        text = route[1:] if route.startswith(":") else ""
        if not text.isdigit() or not 0 < int(text) < 65536:
            problems.append(f"fabio tag {tag!r}: a TCP route is urlprefix-:PORT proto=tcp")
            return None
        return int(text)
    if proto != "http":
        problems.append(f"fabio tag {tag!r}: proto={proto} is not supported; route ignored")
        return None
    slash = route.find("/")
    if slash < 0:
        problems.append(f"fabio tag {tag!r}: the route has no path (urlprefix-host/path)")
        return None
    host, path = route[:slash], route[slash:]
    if problem := path_problem(path):
        problems.append(f"fabio tag {tag!r}: {problem}")
        return None
    if not host:
        return _Route((), path)
    if problem := host_problem(host):
        problems.append(f"fabio tag {tag!r}: {problem}")
        return None
    return _Route((_host_matcher(host),), path)
