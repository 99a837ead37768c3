"""An OpenAPI 3.1 description of the Passport API, generated from the registry.

One source of truth: the document is built from the same :class:`Endpoint`
records that route requests, so a method cannot exist without being described.
"""

from __future__ import annotations

from typing import Any

from passport import __version__
from passport.web.registry import Endpoint
from passport.web.registry import Registry

_TYPES = {str: "string", int: "integer", bool: "boolean"}
_REASONS = {
    200: "Success: the envelope's Data holds the answer.",
    400: "Bad input: see ClientExceptions.",
    401: "Not logged in, or bad credentials.",
    403: "Not allowed.",
    404: "No such method or object.",
    405: "Wrong HTTP method (see Allow).",
    409: "The name is already taken.",
    413: "Request body too large.",
    429: "Throttled (see Retry-After).",
    500: "Unexpected error; the message carries an error id.",
    503: "Database unreachable; retry later.",
}
_ENVELOPE = {"$ref": "#/components/schemas/Envelope"}


def _schema(endpoint: Endpoint, name: str, kind: type, max_length: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": _TYPES[kind]}
    if kind is str:
        schema["maxLength"] = max_length
    return schema


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    # Every write may be refused by the CSRF check (403).
    csrf = () if endpoint.read_only else (403,)
    statuses = sorted({200, 400, 405, 500, 503, *csrf, *endpoint.statuses})
    operation: dict[str, Any] = {
        "operationId": f"{endpoint.controller}_{endpoint.method}",
        "tags": [endpoint.controller],
        "summary": endpoint.summary or endpoint.method,
        # Whether pages of an application's registered origins may call it (CORS with
        # credentials); false: Passport's own pages and servers only.
        "x-passport-cross-origin": endpoint.cross_origin,
        "responses": {
            str(code): {
                "description": _REASONS.get(code, "See the envelope."),
                "content": {"application/json": {"schema": _ENVELOPE}},
            }
            for code in statuses
        },
    }
    if endpoint.read_only:
        parameters = [
            {
                "name": p.name,
                "in": "query",
                "required": False,
                "schema": _schema(endpoint, p.name, p.kind, p.max_length),
            }
            for p in endpoint.params
        ]
        if endpoint.jsonp:
            parameters.append(
                {
                    "name": "callback",
                    "in": "query",
                    "required": False,
                    "description": "JSONP: wrap the envelope as /**/callback(...); (HTTP 200).",
                    "schema": {"type": "string", "pattern": r"^[A-Za-z_$][A-Za-z0-9_$.]*$"},
                }
            )
        if parameters:
            operation["parameters"] = parameters
    else:
        body = {
            "type": "object",
            "properties": {
                p.name: _schema(endpoint, p.name, p.kind, p.max_length) for p in endpoint.params
            },
        }
        operation["requestBody"] = {
            "required": False,
            "content": {
                "application/x-www-form-urlencoded": {"schema": body},
                "application/json": {"schema": body},
            },
        }
    return operation


def build(registry: Registry, server_url: str | None = None) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for endpoint in registry:
        item = paths.setdefault(endpoint.path, {})
        for method in sorted(endpoint.http_methods - {"HEAD"}):
            item[method.lower()] = _operation(endpoint)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Passport API",
            "version": __version__,
            "description": (
                "Single sign-on identity service. Every answer is the envelope; URLs match "
                "in any letter case; parameter names too."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Envelope": {
                    "type": "object",
                    "required": [
                        "Success",
                        "LoggedIn",
                        "Data",
                        "ClientExceptions",
                        "ServerExceptions",
                    ],
                    "properties": {
                        "Success": {"type": "boolean"},
                        "LoggedIn": {"type": "boolean"},
                        "Data": {},
                        "ClientExceptions": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/ClientException"},
                        },
                        "ServerExceptions": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/ServerException"},
                        },
                    },
                },
                "ClientException": {
                    "type": "object",
                    "required": ["Message", "Source", "Value", "Number"],
                    "properties": {
                        "Message": {"type": "string"},
                        "Source": {"type": ["string", "null"]},
                        "Value": {},
                        "Number": {"type": "string"},
                    },
                },
                "ServerException": {
                    "type": "object",
                    "required": ["Message"],
                    "properties": {"Message": {"type": "string"}},
                },
            },
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "passport_session"},
                "client": {"type": "http", "scheme": "basic"},
            },
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
