"""DOT's validator with the user's profile and email claims (OIDC Core §5.4).

DOT returns only ``sub`` unless the project names further claims; this is the
request-agnostic form its documentation shows, so the claims are also listed in
discovery. DOT filters them by the token's scopes (``oidc_claim_scope``).
"""

from __future__ import annotations

from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator


class ClaimsValidator(OAuth2Validator):  # type: ignore[misc]
    def get_additional_claims(self) -> dict[str, Any]:
        return {
            "name": lambda request: request.user.get_full_name() or request.user.username,
            "given_name": lambda request: request.user.first_name,
            "family_name": lambda request: request.user.last_name,
            "preferred_username": lambda request: request.user.username,
            "email": lambda request: request.user.email,
        }
