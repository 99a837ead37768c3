"""OIDC discovery at the root, as the runner expects it, with DOT's introspection endpoint.

DOT's own discovery view (served unchanged under /o/) lists no
``introspection_endpoint`` (only its RFC 8414 document does); the runner finds
every endpoint through discovery, so this view adds DOT's real introspection and
revocation URLs to what DOT's view returns.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from django.http import HttpResponse
from django.http import JsonResponse
from oauth2_provider.views import ConnectDiscoveryInfoView


class DiscoveryView(ConnectDiscoveryInfoView):  # type: ignore[misc]
    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        data = json.loads(super().get(request, *args, **kwargs).content)
        endpoint = self._get_endpoint_url
        data["introspection_endpoint"] = endpoint(request, "introspect", required=True)
        data["revocation_endpoint"] = endpoint(request, "revoke-token", required=True)
        response = JsonResponse(data)
        response["Access-Control-Allow-Origin"] = "*"
        return response
