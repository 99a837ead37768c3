"""From raw request bytes to the keyword arguments of an endpoint.

Parsing is strict on purpose: invalid UTF-8, a repeated parameter, nested
JSON or a password in the URL are refused with a clear error rather than
guessed at, because an identity service that guesses can be fooled.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import parse_qsl

from werkzeug import Request

from passport.errors import ClientError
from passport.errors import Invalid
from passport.errors import WrongLength
from passport.web.errors import WebError
from passport.web.registry import Endpoint
from passport.web.registry import Param

MAX_FIELDS = 100
# Deepest JSON nesting accepted.  Passport's parameters are flat; the limit exists so that a
# body like ``[[[[…]]]]`` is refused before the parser recurses into it (RecursionError).
MAX_JSON_DEPTH = 32
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
# ASCII digits only: str.isdigit() and int() also accept "²", "٣" and other Unicode digits,
# and disagree on some of them.  19 digits cover the signed 64-bit range.
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_JSON_STRUCTURE = re.compile(rb'[\[\]{}"\\]')


def _malformed(message: str) -> ClientError:
    return ClientError(message, source="request")


def parse_pairs(
    raw: str | bytes, where: str, repeats: dict[str, list[str]] | None = None
) -> dict[str, str]:
    """``a=1&B=2`` → ``{"a": "1", "b": "2"}``; keys lower-cased, repeats refused — except
    of the names that ``repeats`` has a key for: every value of those is appended to its
    list (the answer keeps the first)."""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise _malformed(f"The {where} is not valid UTF-8.") from None
    except ValueError:
        raise _malformed(f"The {where} has too many parameters.") from None
    values: dict[str, str] = {}
    for key, value in pairs:
        lowered = key.lower()
        if repeats is not None and lowered in repeats:
            repeats[lowered].append(value)
            values.setdefault(lowered, value)
            continue
        if lowered in values:
            raise Invalid(f"Parameter '{key}' is given more than once.", source=key[:64])
        values[lowered] = value
    return values


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``' hook for every object: a name given twice is refused, never "the
    last one wins" (RFC 8259 §4 leaves duplicates to the parser; a filter in front of
    Passport and Passport itself must not read different values)."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _RepeatedKey(key)
        document[key] = value
    return document


def json_depth_exceeds(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``data`` nests arrays/objects deeper than ``limit`` (outside strings).

    One linear pass over the structural characters only, before any parsing, so a
    hostile body costs no recursion and no quadratic backtracking.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth = 0
    in_string = False
    escaped_until = -1
    for match in _JSON_STRUCTURE.finditer(data):
        position = match.start()
        if position < escaped_until:
            continue
        char = data[position]
        if in_string:
            if char == 0x5C:  # backslash: the next character is escaped
                escaped_until = position + 2
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif char in (0x5D, 0x7D):
            depth -= 1
    return False


def parse_body(request: Request, repeats: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Form-encoded or JSON object body, keys lower-cased; ``repeats`` as for
    :func:`parse_pairs` (in JSON a name is given once: its string value is appended)."""
    data = request.get_data(cache=True)
    if not data:
        return {}
    mimetype = request.mimetype
    if mimetype == "application/json":
        if json_depth_exceeds(data):
            raise _malformed(f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.")
        try:
            document = json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys)
            # JSON's \uXXXX escapes can spell lone surrogates, which are not text: no
            # database, log or answer can encode them (RFC 8259 §8.2).
            json.dumps(document, ensure_ascii=False).encode("utf-8")
        except _RepeatedKey as repeated:
            raise Invalid(
                f"Parameter '{repeated.key[:64]}' is given more than once.",
                source=repeated.key[:64],
            ) from None
        except (UnicodeError, ValueError, RecursionError):
            raise _malformed("The request body is not valid JSON.") from None
        if not isinstance(document, dict):
            raise _malformed("The JSON body must be an object.")
        if len(document) > MAX_FIELDS:
            raise _malformed("The request body has too many parameters.")
        values: dict[str, Any] = {}
        for key, value in document.items():
            if key.lower() in values:
                raise Invalid(
                    f"Parameter '{key}' is given more than once.",
                    source=key[:64],
                )
            values[key.lower()] = value
            if repeats is not None and key.lower() in repeats and isinstance(value, str):
                repeats[key.lower()].append(value)
        return values
    if mimetype in ("application/x-www-form-urlencoded", ""):
        return parse_pairs(data, "request body", repeats)
    raise WebError(
        "Send the body as application/x-www-form-urlencoded or application/json.",
        source="Content-Type",
        value=mimetype[:100],
        number=400,
        status=415,
    )


def _shown(param: Param, raw: Any) -> Any:
    if param.secret:
        return None
    if isinstance(raw, str) and len(raw) > 100:
        return raw[:100] + "…"
    if isinstance(raw, float) and not math.isfinite(raw):
        return None  # NaN and Infinity have no JSON spelling
    return raw if isinstance(raw, str | int | float | bool) or raw is None else None


def convert(param: Param, raw: Any) -> Any:
    """Check and convert one raw value to the parameter's declared type."""
    if raw is None:
        return None
    name = param.name
    if param.kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise Invalid(f"{name} must be true or false.", source=name, value=_shown(param, raw))
    if param.kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str) and len(raw) <= 64 and _INTEGER.fullmatch(raw.strip()):
            value = int(raw.strip(), 10)
        else:
            raise Invalid(
                f"{name} must be an integer.",
                source=name,
                value=_shown(param, raw),
            )
        if not -(2**63) <= value < 2**63:
            raise Invalid(f"{name} is out of range.", source=name, value=_shown(param, raw))
        return value
    if not isinstance(raw, str):
        raise Invalid(f"{name} must be a string.", source=name, value=_shown(param, raw))
    if len(raw) > param.max_length:
        raise WrongLength(
            f"{name} must be at most {param.max_length} characters long.",
            source=name,
            value=_shown(param, raw),
        )
    if "\x00" in raw:
        raise Invalid(
            f"{name} must not contain NUL characters.",
            source=name,
            value=_shown(param, raw.replace("\x00", "\\0")),
        )
    return raw


def bind(endpoint: Endpoint, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``endpoint``: every parameter present, missing ones None."""
    kwargs: dict[str, Any] = {}
    for param in endpoint.params:
        if param.secret and param.key in query:
            raise Invalid(
                f"{param.name} must be sent in the request body (POST), never in the URL.",
                source=param.name,
            )
        raw = body.get(param.key, query.get(param.key))
        if param.key in body and param.key in query:  # even with equal values: one place
            raise Invalid(
                f"Parameter '{param.name}' is given more than once.",
                source=param.name,
            )
        kwargs[param.name] = convert(param, raw)
    return kwargs
