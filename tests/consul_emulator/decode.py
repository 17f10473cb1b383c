"""Go-like strict JSON decoding of request bodies (``lib.DecodeJSON`` + ``DisallowUnknownFields``).

A :class:`Schema` lists a Go struct's fields. Keys match field names exactly first and then
case-insensitively (``name`` == ``Name``), snake_case aliases map onto their CamelCase field (the
CamelCase key wins when both are sent), unknown keys fail with Go's message, and durations accept
Go duration strings or JSON numbers (nanoseconds). Decoded values use canonical field names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from .gotypes import GoDurationError, go_quote, go_quote_char, parse_duration

__all__ = [
    "CHECK_DEFINITION",
    "CHECK_TYPE",
    "CHECK_UPDATE",
    "DEREGISTER_REQUEST",
    "REGISTER_REQUEST",
    "SERVICE_DEFINITION",
    "DecodeError",
    "Field",
    "GoNumber",
    "Schema",
    "decode_body",
    "plain",
]


class DecodeError(ValueError):
    """The body could not be decoded; ``str(err)`` is Go's message (without the HTTP prefix)."""


class GoNumber(str):
    """A JSON number kept as its literal text, so ``1e3`` and ``1.0`` are not silently ints."""

    __slots__ = ()


STRING: Final = "string"
INT: Final = "int"
BOOL: Final = "bool"
DURATION: Final = "duration"
STRLIST: Final = "[]string"
STRMAP: Final = "map[string]string"
HEADERMAP: Final = "map[string][]string"
STRUCT: Final = "struct"
STRUCTLIST: Final = "structlist"
STRUCTMAP: Final = "structmap"
ANY: Final = "any"


@dataclass(frozen=True)
class Field:
    """One Go struct field: canonical name, kind, snake_case aliases, nested schema."""

    name: str
    kind: str = STRING
    aliases: tuple[str, ...] = ()
    schema: Schema | None = None


@dataclass(frozen=True)
class Schema:
    """A Go struct: its type name (for error messages) and its fields."""

    go_name: str
    fields: tuple[Field, ...]
    _names: dict[str, tuple[str, bool]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names: dict[str, tuple[str, bool]] = {}
        for f in self.fields:
            names[f.name] = (f.name, False)
            for alias in f.aliases:
                names[alias] = (f.name, True)
        object.__setattr__(self, "_names", names)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def lookup(self, key: str) -> tuple[str, bool] | None:
        """``(canonical field name, via alias?)`` for a JSON key, Go's matching rules."""
        hit = self._names.get(key)
        if hit is not None:
            return hit
        folded = key.lower()
        for name, target in self._names.items():
            if len(name) == len(key) and name.lower() == folded:
                return target
        return None


def _go_type(f: Field) -> str:
    if f.kind == STRUCT and f.schema is not None:
        return f"structs.{f.schema.go_name}"
    if f.kind == STRUCTLIST and f.schema is not None:
        return f"[]*structs.{f.schema.go_name}"
    if f.kind == STRUCTMAP and f.schema is not None:
        return f"map[string]structs.{f.schema.go_name}"
    return f.kind


def _json_kind(value: Any) -> str:
    if isinstance(value, GoNumber):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, list):
        return "array"
    if isinstance(value, _Obj):
        return "object"
    return "null"


class _Obj:
    """A JSON object as its key/value pairs in document order (duplicates kept)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self.pairs)


def _type_error(what: str, schema: Schema, path: str, go_type: str) -> DecodeError:
    return DecodeError(
        f"json: cannot unmarshal {what} into Go struct field {schema.go_name}.{path} "
        f"of type {go_type}"
    )


_INT_RE = re.compile(r"-?(0|[1-9][0-9]*)\Z")


def _decode_value(f: Field, value: Any, root: Schema, path: str) -> Any:
    """Decode one field value; returns ``None`` when Go would leave the zero value untouched."""
    if value is None:
        return None
    kind = f.kind
    go_type = _go_type(f)
    if kind == STRING:
        if isinstance(value, str) and not isinstance(value, GoNumber):
            return str(value)
        raise _type_error(_json_kind(value), root, path, go_type)
    if kind == INT:
        if isinstance(value, GoNumber):
            if _INT_RE.match(value):
                n = int(value)
                if -(1 << 63) <= n < (1 << 63):
                    return n
            raise _type_error(f"number {value}", root, path, go_type)
        raise _type_error(_json_kind(value), root, path, go_type)
    if kind == BOOL:
        if isinstance(value, bool):
            return value
        raise _type_error(_json_kind(value), root, path, go_type)
    if kind == DURATION:
        # Consul's UnmarshalJSON: string => ParseDuration, float64 => nanoseconds, else ignored.
        if isinstance(value, GoNumber):
            return int(float(value))
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except GoDurationError as exc:
                raise DecodeError(str(exc)) from None
        return None
    if kind == STRLIST:
        if not isinstance(value, list):
            raise _type_error(_json_kind(value), root, path, go_type)
        out: list[str] = []
        for item in value:
            if item is None:
                out.append("")
            elif isinstance(item, str) and not isinstance(item, GoNumber):
                out.append(str(item))
            else:
                raise _type_error(_json_kind(item), root, path, "string")
        return out
    if kind == STRMAP:
        if not isinstance(value, _Obj):
            raise _type_error(_json_kind(value), root, path, go_type)
        m: dict[str, str] = {}
        for k, v in value:
            if v is None:
                m[k] = ""
            elif isinstance(v, str) and not isinstance(v, GoNumber):
                m[k] = str(v)
            else:
                raise _type_error(_json_kind(v), root, f"{path}", "string")
        return m
    if kind == HEADERMAP:
        if not isinstance(value, _Obj):
            raise _type_error(_json_kind(value), root, path, go_type)
        hm: dict[str, list[str]] = {}
        for k, v in value:
            hm[k] = _decode_value(Field(k, STRLIST), v, root, path) or []
        return hm
    if kind == STRUCT:
        assert f.schema is not None
        if not isinstance(value, _Obj):
            raise _type_error(_json_kind(value), root, path, go_type)
        return _decode_struct(f.schema, value, root, path)
    if kind == STRUCTLIST:
        assert f.schema is not None
        if not isinstance(value, list):
            raise _type_error(_json_kind(value), root, path, go_type)
        items: list[dict[str, Any]] = []
        for item in value:
            if item is None:
                items.append({})
            elif isinstance(item, _Obj):
                items.append(_decode_struct(f.schema, item, root, path))
            else:
                raise _type_error(_json_kind(item), root, path, f"structs.{f.schema.go_name}")
        return items
    if kind == STRUCTMAP:
        assert f.schema is not None
        if not isinstance(value, _Obj):
            raise _type_error(_json_kind(value), root, path, go_type)
        sm: dict[str, dict[str, Any]] = {}
        for k, v in value:
            if v is None:
                sm[k] = {}
            elif isinstance(v, _Obj):
                sm[k] = _decode_struct(f.schema, v, root, path)
            else:
                raise _type_error(_json_kind(v), root, path, f"structs.{f.schema.go_name}")
        return sm
    return plain(value)


def _decode_struct(schema: Schema, obj: _Obj, root: Schema, prefix: str) -> dict[str, Any]:
    direct: dict[str, Any] = {}
    via_alias: dict[str, Any] = {}
    deferred: list[DecodeError] = []
    for key, value in obj:
        hit = schema.lookup(key)
        if hit is None:
            raise DecodeError(f"json: unknown field {go_quote(key)}")
        name, is_alias = hit
        f = schema.field(name)
        path = f"{prefix}.{name}" if prefix else name
        try:
            decoded = _decode_value(f, value, root, path)
        except DecodeError as exc:
            if f.kind == DURATION:
                # Durations are parsed after the struct itself decoded (Consul's UnmarshalJSON).
                deferred.append(exc)
                continue
            raise
        target = via_alias if is_alias else direct
        if decoded is None:
            if f.kind in (STRLIST, STRMAP, HEADERMAP, STRUCTLIST, STRUCTMAP, STRUCT, ANY):
                target.pop(name, None)
            continue
        target[name] = decoded
    if deferred:
        raise deferred[0]
    for name, value in via_alias.items():
        direct.setdefault(name, value)
    return direct


def plain(value: Any) -> Any:
    """Turn the parser's representation back into ordinary JSON-able Python values."""
    if isinstance(value, GoNumber):
        return int(value) if _INT_RE.match(value) else float(value)
    if isinstance(value, _Obj):
        return {k: plain(v) for k, v in value}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _reject_constant(name: str) -> Any:
    raise json.JSONDecodeError("Expecting value", name, 0)


_DECODER = json.JSONDecoder(
    object_pairs_hook=_Obj,
    parse_int=GoNumber,
    parse_float=GoNumber,
    parse_constant=_reject_constant,
)

_CONTEXT = {
    "Expecting value": "looking for beginning of value",
    "Expecting property name enclosed in double quotes": (
        "looking for beginning of object key string"
    ),
    "Expecting ':' delimiter": "after object key",
    "Expecting ',' delimiter": "after object key:value pair",
    "Invalid control character at": "in string literal",
}


def _syntax_error(doc: str, exc: json.JSONDecodeError) -> DecodeError:
    pos = exc.pos
    if pos >= len(doc) or exc.msg.startswith("Unterminated string"):
        return DecodeError("unexpected EOF")
    context = "looking for beginning of value"
    for prefix, text in _CONTEXT.items():
        if exc.msg.startswith(prefix):
            context = text
            break
    # Python says "Expecting ',' delimiter" for arrays too; Go distinguishes them.
    if exc.msg.startswith("Expecting ',' delimiter") and _enclosing(doc, pos) == "[":
        context = "after array element"
    return DecodeError(f"invalid character {go_quote_char(doc[pos])} {context}")


def _enclosing(doc: str, pos: int) -> str:
    """The innermost open bracket at ``pos`` (approximate, ignores brackets inside strings)."""
    stack: list[str] = []
    in_str = False
    escaped = False
    for c in doc[:pos]:
        if in_str:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "[{":
            stack.append(c)
        elif c in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def decode_body(schema: Schema, body: bytes) -> dict[str, Any]:
    """Decode a request body into ``schema``'s fields, or raise :class:`DecodeError`.

    Like ``json.NewDecoder(r).Decode(&v)``: whitespace only is ``EOF``, anything after the first
    JSON value is ignored, ``null`` decodes to nothing.
    """
    try:
        doc = body.decode("utf-8")
    except UnicodeDecodeError:
        doc = body.decode("utf-8", errors="replace")
    start = len(doc) - len(doc.lstrip(" \t\r\n"))
    if start == len(doc):
        raise DecodeError("EOF")
    try:
        value, _end = _DECODER.raw_decode(doc, start)
    except json.JSONDecodeError as exc:
        raise _syntax_error(doc, exc) from None
    if value is None:
        return {}
    if not isinstance(value, _Obj):
        raise DecodeError(
            f"json: cannot unmarshal {_json_kind(value)} into Go value of type "
            f"structs.{schema.go_name}"
        )
    return _decode_struct(schema, value, schema, "")


# --- the structs Consul decodes --------------------------------------------------------------

SERVICE_ADDRESS = Schema("ServiceAddress", (Field("Address"), Field("Port", INT)))
WEIGHTS = Schema("Weights", (Field("Passing", INT), Field("Warning", INT)))

_CHECK_TYPE_COMMON: tuple[Field, ...] = (
    Field("Name"),
    Field("Status"),
    Field("Notes"),
    Field("ScriptArgs", STRLIST, aliases=("args", "script_args")),
    Field("HTTP"),
    Field("Header", HEADERMAP),
    Field("Method"),
    Field("Body"),
    Field("DisableRedirects", BOOL),
    Field("TCP"),
    Field("TCPUseTLS", BOOL),
    Field("UDP"),
    Field("Interval", DURATION),
    Field("AliasNode"),
    Field("AliasService"),
    Field("DockerContainerID", aliases=("docker_container_id",)),
    Field("Shell"),
    Field("GRPC"),
    Field("GRPCUseTLS", BOOL, aliases=("grpc_use_tls",)),
    Field("H2PING"),
    Field("H2PingUseTLS", BOOL),
    Field("OSService"),
    Field("TLSServerName", aliases=("tls_server_name",)),
    Field("TLSSkipVerify", BOOL, aliases=("tls_skip_verify",)),
    Field("Timeout", DURATION),
    Field("TTL", DURATION),
    Field("SuccessBeforePassing", INT),
    Field("FailuresBeforeWarning", INT),
    Field("FailuresBeforeCritical", INT),
    Field("ProxyHTTP"),
    Field("ProxyGRPC"),
    Field(
        "DeregisterCriticalServiceAfter", DURATION, aliases=("deregister_critical_service_after",)
    ),
    Field("OutputMaxSize", INT),
)

CHECK_TYPE = Schema(
    "CheckType",
    (
        Field("CheckID"),
        *_CHECK_TYPE_COMMON,
        Field("ServiceID", aliases=("service_id",)),
    ),
)

CHECK_DEFINITION = Schema(
    "CheckDefinition",
    (
        Field("ID"),
        Field("ServiceID", aliases=("service_id",)),
        Field("Token"),
        *_CHECK_TYPE_COMMON,
        Field("Namespace"),
        Field("Partition"),
    ),
)

SERVICE_DEFINITION = Schema(
    "ServiceDefinition",
    (
        Field("Kind"),
        Field("ID"),
        Field("Name"),
        Field("Tags", STRLIST),
        Field("Address"),
        Field("TaggedAddresses", STRUCTMAP, aliases=("tagged_addresses",), schema=SERVICE_ADDRESS),
        Field("Meta", STRMAP),
        Field("Port", INT),
        Field("SocketPath", aliases=("socket_path",)),
        Field("Check", STRUCT, schema=CHECK_TYPE),
        Field("Checks", STRUCTLIST, schema=CHECK_TYPE),
        Field("Weights", STRUCT, schema=WEIGHTS),
        Field("Token"),
        Field("EnableTagOverride", BOOL, aliases=("enable_tag_override",)),
        Field("Proxy", ANY),
        Field("Connect", ANY),
        Field("Locality", ANY),
        Field("Namespace"),
        Field("Partition"),
    ),
)

CHECK_UPDATE = Schema("checkUpdate", (Field("Status"), Field("Output")))

NODE_SERVICE = Schema(
    "NodeService",
    (
        Field("Kind"),
        Field("ID"),
        Field("Service"),
        Field("Tags", STRLIST),
        Field("Address"),
        Field("TaggedAddresses", STRUCTMAP, schema=SERVICE_ADDRESS),
        Field("Meta", STRMAP),
        Field("Port", INT),
        Field("SocketPath"),
        Field("Weights", STRUCT, schema=WEIGHTS),
        Field("EnableTagOverride", BOOL),
        Field("Proxy", ANY),
        Field("Connect", ANY),
        Field("Locality", ANY),
        Field("PeerName"),
        Field("CreateIndex", INT),
        Field("ModifyIndex", INT),
        Field("Namespace"),
        Field("Partition"),
    ),
)

HEALTH_CHECK = Schema(
    "HealthCheck",
    (
        Field("Node"),
        Field("CheckID"),
        Field("Name"),
        Field("Status"),
        Field("Notes"),
        Field("Output"),
        Field("ServiceID"),
        Field("ServiceName"),
        Field("ServiceTags", STRLIST),
        Field("Type"),
        Field("Interval"),
        Field("Timeout"),
        Field("ExposedPort", INT),
        Field("Definition", ANY),
        Field("CreateIndex", INT),
        Field("ModifyIndex", INT),
        Field("Namespace"),
        Field("Partition"),
        Field("PeerName"),
    ),
)

REGISTER_REQUEST = Schema(
    "RegisterRequest",
    (
        Field("Datacenter"),
        Field("ID"),
        Field("Node"),
        Field("Address"),
        Field("TaggedAddresses", STRMAP),
        Field("NodeMeta", STRMAP),
        Field("Service", STRUCT, schema=NODE_SERVICE),
        Field("Check", STRUCT, schema=HEALTH_CHECK),
        Field("Checks", STRUCTLIST, schema=HEALTH_CHECK),
        Field("SkipNodeUpdate", BOOL),
        Field("Token"),
        Field("Locality", ANY),
        Field("Namespace"),
        Field("Partition"),
        Field("PeerName"),
    ),
)

DEREGISTER_REQUEST = Schema(
    "DeregisterRequest",
    (
        Field("Datacenter"),
        Field("Node"),
        Field("ServiceID"),
        Field("CheckID"),
        Field("Token"),
        Field("Namespace"),
        Field("Partition"),
        Field("PeerName"),
    ),
)
