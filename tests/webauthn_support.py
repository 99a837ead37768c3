"""A software authenticator for tests: answers Passport's WebAuthn options as a real
authenticator would (WebAuthn L3 §6.3.2 authenticatorMakeCredential, §6.3.3
authenticatorGetAssertion), with an EC P-256 key, "none" attestation, user presence and
verification, and a signature counter — so that the ceremonies are checked by the real
``webauthn`` library on the server, never mocked.  Each knob (origin, flags, counter,
challenge) can be set wrong on purpose."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Credential:
    id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0
    backup_eligible: bool = False


@dataclass
class SoftAuthenticator:
    """Holds credentials like a security key or a platform authenticator."""

    origin: str
    aaguid: bytes = b"\x00" * 16
    credentials: list[Credential] = field(default_factory=list)
    counts: bool = True  # a counter that grows (False: always 0, as synced passkeys)
    backup_eligible: bool = False

    def _auth_data(self, rp_id: str, flags: int, count: int, attested: bytes = b"") -> bytes:
        return (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([flags])
            + struct.pack(">I", count)
            + attested
        )

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False},
            separators=(",", ":"),
        ).encode()

    def create(
        self,
        options: dict[str, Any] | str,
        *,
        origin: str | None = None,
        challenge: str | None = None,
        flags: int | None = None,
        rp_id: str | None = None,
    ) -> str:
        """The ``PublicKeyCredential.toJSON()`` of a new credential for ``options``
        (PublicKeyCredentialCreationOptionsJSON)."""
        opts = json.loads(options) if isinstance(options, str) else options
        rp = rp_id or opts["rp"]["id"]
        key = ec.generate_private_key(ec.SECP256R1())
        numbers = key.public_key().public_numbers()
        cose = cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )
        cred_id = os.urandom(32)
        credential = Credential(
            cred_id, key, rp, unb64url(opts["user"]["id"]), backup_eligible=self.backup_eligible
        )
        attested = self.aaguid + struct.pack(">H", len(cred_id)) + cred_id + cose
        bits = UP | UV | AT | (BE if self.backup_eligible else 0)
        auth_data = self._auth_data(rp, bits if flags is None else flags | AT, 0, attested)
        client_data = self._client_data(
            "webauthn.create", challenge or opts["challenge"], origin or self.origin
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        self.credentials.append(credential)
        return json.dumps(
            {
                "id": b64url(cred_id),
                "rawId": b64url(cred_id),
                "type": "public-key",
                "authenticatorAttachment": "cross-platform",
                "clientExtensionResults": {},
                "response": {
                    "clientDataJSON": b64url(client_data),
                    "attestationObject": b64url(attestation),
                    "transports": ["usb"],
                },
            }
        )

    def get(
        self,
        options: dict[str, Any] | str,
        *,
        credential: Credential | None = None,
        origin: str | None = None,
        challenge: str | None = None,
        flags: int | None = None,
        count: int | None = None,
        user_handle: bytes | None = None,
    ) -> str:
        """The ``toJSON()`` of an assertion for ``options``
        (PublicKeyCredentialRequestOptionsJSON): by the first allowed credential this
        authenticator holds, or any (a discoverable one) when none is listed."""
        opts = json.loads(options) if isinstance(options, str) else options
        if credential is None:
            allowed = {unb64url(c["id"]) for c in opts.get("allowCredentials") or []}
            usable = [c for c in self.credentials if not allowed or c.id in allowed]
            if not usable:
                raise LookupError("no credential of this authenticator is allowed")
            credential = usable[0]
        if self.counts:
            credential.sign_count += 1
        used = credential.sign_count if count is None else count
        bits = UP | UV | (BE | BS if credential.backup_eligible else 0)
        auth_data = self._auth_data(credential.rp_id, bits if flags is None else flags, used)
        client_data = self._client_data(
            "webauthn.get", challenge or opts["challenge"], origin or self.origin
        )
        signature = credential.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        handle = credential.user_handle if user_handle is None else user_handle
        return json.dumps(
            {
                "id": b64url(credential.id),
                "rawId": b64url(credential.id),
                "type": "public-key",
                "authenticatorAttachment": "cross-platform",
                "clientExtensionResults": {},
                "response": {
                    "clientDataJSON": b64url(client_data),
                    "authenticatorData": b64url(auth_data),
                    "signature": b64url(signature),
                    "userHandle": b64url(handle),
                },
            }
        )
