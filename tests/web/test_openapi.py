"""``/openapi.json``: a valid OpenAPI 3.1 document built from the registry itself."""

from __future__ import annotations

import json

from openapi_spec_validator import validate

from passport.api import API

from support import Harness


def test_document_is_valid_and_complete(harness: Harness) -> None:
    response = harness.client.get("/openapi.json")
    assert response.status_code == 200
    document = json.loads(response.get_data(as_text=True))
    validate(document)
    assert document["openapi"] == "3.1.0"
    for endpoint in API:
        item = document["paths"][endpoint.path]
        for method in endpoint.http_methods - {"HEAD"}:
            operation = item[method.lower()]
            assert operation["operationId"] == f"{endpoint.controller}_{endpoint.method}"
            assert "200" in operation["responses"]
            names = (
                [p["name"] for p in operation.get("parameters", [])]
                if method == "GET"
                else list(
                    operation["requestBody"]["content"]["application/json"]["schema"]["properties"]
                )
            )
            assert {p.name for p in endpoint.params} <= set(names)
    assert len(document["paths"]) == len(API)


def test_every_method_is_in_the_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent.parent / "README.md").read_text()
    missing = [e.path for e in API if f"`{e.controller}/{e.method}`" not in readme]
    assert missing == []
