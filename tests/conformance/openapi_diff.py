"""Differences between two OpenAPI documents, as one line of text each.

The lines are stable and readable, because tests/data/openapi-deviations.yaml lists the ones we
mean (with a reason) and docs/api.md quotes them. Each names the operation, then where:

    GET /status/systems: parameter query allusers: only here
    GET /status/systems: response 200: systems[].probing: only upstream
    POST /compute/{}/jobs: request: job.env: type here object|array|null, upstream object|array
    PUT /compute/{}/jobs/{}/attach: request: command: required here, optional upstream

What is compared: the operations (path and method), their documented status codes (both
documents give errors as ``4XX``/``5XX`` with FirecREST's error body), parameters (name,
place, required, type), request bodies (media types, schema) and response schemas — field
names, types (with `null` when a field may be null, and the format of strings such as
`date-time`), enumerated values, and in requests which fields are required. Path parameter
names are left out (`{}`): they are not on the wire.

Only what a client could notice counts: a request must accept everything upstream accepts (a
wider type, or an optional field upstream requires, is fine) and a response must send only
what upstream may send (never sending null where upstream allows it is fine).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_METHODS = ("get", "put", "post", "delete", "patch")
_PARAM = re.compile(r"\{[^}]*\}")


def operations(document: dict) -> dict[str, dict]:
    """``"GET /status/{}/nodes"`` -> operation; trailing slashes dropped, as both servers route
    ``/status/liveness`` and ``/status/liveness/`` alike."""
    found: dict[str, dict] = {}
    for path, item in document.get("paths", {}).items():
        key_path = _PARAM.sub("{}", path.rstrip("/") or "/")
        for method in _METHODS:
            if method in item:
                found[f"{method.upper()} {key_path}"] = item[method]
    return found


class _Schemas:
    def __init__(self, document: dict) -> None:
        self.components = document.get("components", {}).get("schemas", {})

    def resolve(self, schema: dict) -> dict:
        seen = 0
        while "$ref" in schema and seen < 32:
            schema = self.components[schema["$ref"].rsplit("/", 1)[-1]]
            seen += 1
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return self.resolve(schema["allOf"][0])
        return schema

    def variants(self, schema: dict) -> list[dict]:
        schema = self.resolve(schema)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return [v for s in schema[key] for v in self.variants(s)]
        return [schema]

    def types(self, schema: dict) -> set[str]:
        kinds: set[str] = set()
        for variant in self.variants(schema):
            kind = variant.get("type")
            if kind is None and "enum" in variant:
                kind = sorted({_json_type(v) for v in variant["enum"]})
            if kind is None and "const" in variant:
                kind = _json_type(variant["const"])
            if kind is None:
                kind = "object" if "properties" in variant else "any"
            for one in [kind] if isinstance(kind, str) else kind:
                fmt = variant.get("format")
                # Only formats that change what is on the wire (a date string, not a number).
                kinds.add(f"{one}:{fmt}" if fmt in ("date-time", "date") else one)
        return kinds

    def properties(self, schema: dict) -> tuple[dict[str, dict], set[str]]:
        """The fields of every object variant, merged; and those every variant requires."""
        props: dict[str, list[dict]] = {}
        required: set[str] | None = None
        for variant in self.variants(schema):
            if "properties" not in variant:
                continue
            for name, sub in variant["properties"].items():
                props.setdefault(name, []).append(sub)
            needed = set(variant.get("required", []))
            required = needed if required is None else required & needed
        merged = {
            name: subs[0] if len(subs) == 1 else {"anyOf": subs} for name, subs in props.items()
        }
        return merged, required or set()

    def items(self, schema: dict) -> dict | None:
        found = [v["items"] for v in self.variants(schema) if "items" in v]
        if not found:
            return None
        return found[0] if len(found) == 1 else {"anyOf": found}

    def values(self, schema: dict) -> set | None:
        found = [v for v in self.variants(schema) if "enum" in v or "const" in v]
        if not found:
            return None
        return {x for v in found for x in v.get("enum", [v.get("const")])}

    def mapping(self, schema: dict) -> dict | None:
        found = [
            v["additionalProperties"]
            for v in self.variants(schema)
            if isinstance(v.get("additionalProperties"), dict)
        ]
        return found[0] if found else None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    return "string" if isinstance(value, str) else "object"


def _types_text(kinds: set[str]) -> str:
    return "|".join(sorted(kinds))


def _covers(wide: set[str], narrow: set[str]) -> bool:
    """Whether every value of a ``narrow`` schema type is also one of ``wide``'s."""
    for kind in narrow:
        base = kind.split(":", 1)[0]
        if kind in wide or base in wide or (base == "integer" and "number" in wide):
            continue
        return False
    return True


def _schema_differences(
    ours: _Schemas,
    up: _Schemas,
    a: dict,
    b: dict,
    where: str,
    request: bool,
    depth: int = 0,
) -> Iterator[str]:
    """Differences a client could notice. In a request we must accept all upstream accepts
    (wider types are fine); in a response we must send only what upstream may send (a field
    upstream declares nullable that we never send as null is fine)."""
    label = where or "(body)"
    ta, tb = ours.types(a), up.types(b)
    if "any" not in ta | tb and not (_covers(ta, tb) if request else _covers(tb, ta)):
        yield f"{label}: type here {_types_text(ta)}, upstream {_types_text(tb)}"
    va, vb = ours.values(a), up.values(b)
    if request and vb is not None and va is not None and vb - va:
        yield f"{label}: values only upstream {sorted(map(str, vb - va))}"
    if not request and vb is not None:
        if va is None:
            yield f"{label}: values unrestricted here, upstream {sorted(map(str, vb))}"
        elif va - vb:
            yield f"{label}: values only here {sorted(map(str, va - vb))}"
    if depth > 12:
        return
    pa, ra = ours.properties(a)
    pb, rb = up.properties(b)
    prefix = f"{where}." if where else ""
    for name in sorted(set(pa) | set(pb)) if pa and pb else ():
        at = f"{prefix}{name}"
        if name not in pb:
            yield f"{at}: only here"
        elif name not in pa:
            yield f"{at}: only upstream"
        else:
            if request and name in ra and name not in rb:
                yield f"{at}: required here, optional upstream"
            yield from _schema_differences(ours, up, pa[name], pb[name], at, request, depth + 1)
    ia, ib = ours.items(a), up.items(b)
    if ia is not None and ib is not None:
        yield from _schema_differences(ours, up, ia, ib, f"{where}[]", request, depth + 1)
    ma, mb = ours.mapping(a), up.mapping(b)
    if ma is not None and mb is not None:
        yield from _schema_differences(ours, up, ma, mb, f"{where}{{*}}", request, depth + 1)


def _without_null(schema: dict) -> dict:
    if "anyOf" in schema:
        kept = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return kept[0] if len(kept) == 1 else {**schema, "anyOf": kept}
    return schema


def _parameters(op: dict) -> dict[str, dict]:
    return {
        f"{p['in']} {p['name']}": p
        for p in op.get("parameters", [])
        # Path parameters are positions in the URL, not names on the wire.
        if p["in"] != "path"
    }


def differences(ours_doc: dict, upstream_doc: dict) -> list[str]:
    ours, up = _Schemas(ours_doc), _Schemas(upstream_doc)
    ops_a, ops_b = operations(ours_doc), operations(upstream_doc)
    found: list[str] = []
    for key in sorted(set(ops_a) | set(ops_b)):
        if key not in ops_b:
            found.append(f"{key}: only here")
            continue
        if key not in ops_a:
            found.append(f"{key}: only upstream")
            continue
        found.extend(
            f"{key}: {line}" for line in _operation_differences(ours, up, ops_a[key], ops_b[key])
        )
    return found


def _operation_differences(ours: _Schemas, up: _Schemas, a: dict, b: dict) -> Iterator[str]:
    pa, pb = _parameters(a), _parameters(b)
    for name in sorted(set(pa) | set(pb)):
        if name not in pb:
            yield f"parameter {name}: only here"
        elif name not in pa:
            yield f"parameter {name}: only upstream"
        else:
            if pa[name].get("required") and not pb[name].get("required"):
                yield f"parameter {name}: required here, optional upstream"
            # A query string has no null: an optional parameter is simply left out.
            schemas = (
                _without_null(pa[name].get("schema", {})),
                _without_null(pb[name].get("schema", {})),
            )
            for line in _schema_differences(ours, up, *schemas, "", True):
                yield f"parameter {name}: {line.removeprefix('(body): ')}"
    yield from _body_differences(ours, up, a.get("requestBody"), b.get("requestBody"))
    sa, sb = a.get("responses", {}), b.get("responses", {})
    for code in sorted(set(sa) | set(sb)):
        if code not in sb:
            yield f"status {code}: only here"
        elif code not in sa:
            yield f"status {code}: only upstream"
        else:
            yield from _content_differences(
                ours,
                up,
                sa[code].get("content", {}),
                sb[code].get("content", {}),
                f"response {code}",
                False,
            )


def _body_differences(
    ours: _Schemas, up: _Schemas, a: dict | None, b: dict | None
) -> Iterator[str]:
    if a is None and b is None:
        return
    if a is None or b is None:
        yield f"request: body {'only upstream' if a is None else 'only here'}"
        return
    if a.get("required") and not b.get("required"):
        yield "request: body required here, optional upstream"
    yield from _content_differences(
        ours, up, a.get("content", {}), b.get("content", {}), "request", True
    )


def _content_differences(
    ours: _Schemas, up: _Schemas, a: dict, b: dict, label: str, request: bool
) -> Iterator[str]:
    for media in sorted(set(a) | set(b)):
        if media not in b:
            yield f"{label}: media type {media}: only here"
        elif media not in a:
            yield f"{label}: media type {media}: only upstream"
        else:
            for line in _schema_differences(
                ours, up, a[media].get("schema", {}), b[media].get("schema", {}), "", request
            ):
                yield f"{label}: {line}"
