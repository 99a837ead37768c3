from __future__ import annotations


def rsa_private_key_pem() -> str:
    """A fresh 2048-bit RSA key (PKCS#8 PEM) for DOT's RS256 ID tokens and JWKS."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
