"""RS256 JWTs issued and checked by the sandbox, shaped like Entra ID v2.0 access tokens.

The Entra stand-in issues them; every other stand-in validates them with ``validate``. Built on
``cryptography`` directly (no JWT library) so the sandbox adds no dependency.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class TokenRejected(Exception):
    """A bearer token failed validation; ``reason`` says why (never contains the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_b64(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT without checking it (for tests and diagnostics only)."""
    try:
        payload = json.loads(b64url_decode(token.split(".")[1]))
    except (IndexError, ValueError) as exc:
        raise TokenRejected("malformed token") from exc
    if not isinstance(payload, dict):
        raise TokenRejected("malformed token")
    return payload


class TokenIssuer:
    """Signs and validates access tokens with one RSA key; the issuer is ``{authority}/{tid}/v2.0``."""

    def __init__(self, authority: str = "", *, key: rsa.RSAPrivateKey | None = None) -> None:
        self.authority = authority.rstrip("/")
        self._key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_der_hash = hashlib.sha256(str(self._key.public_key().public_numbers().n).encode()).digest()
        self.kid = b64url(public_der_hash[:18])

    def issuer_for(self, tenant: str) -> str:
        return f"{self.authority}/{tenant}/v2.0"

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set with the public signing key."""
        numbers = self._key.public_key().public_numbers()
        return {
            "keys": [
                {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "x5t": self.kid,
                 "n": _int_b64(numbers.n), "e": _int_b64(numbers.e), "issuer": f"{self.authority}/{{tenantid}}/v2.0"}
            ]
        }

    def sign(self, claims: dict[str, Any], *, header: dict[str, Any] | None = None) -> str:
        """A compact RS256 JWT with ``claims`` as the payload."""
        head = {"typ": "JWT", "alg": "RS256", "kid": self.kid, **(header or {})}
        signing_input = (
            b64url(json.dumps(head, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)

    def issue(
        self,
        *,
        tenant: str,
        audience: str,
        client_id: str,
        oid: str | None = None,
        scp: Sequence[str] | None = None,
        roles: Sequence[str] | None = None,
        amr: Sequence[str] | None = None,
        upn: str | None = None,
        lifetime: int = 3600,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """An access token: ``scp`` for delegated (App+User) tokens, ``roles`` for app-only ones."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer_for(tenant),
            "iat": now,
            "nbf": now - 60,
            "exp": now + lifetime,
            "tid": tenant,
            "oid": oid or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{client_id}")),
            "appid": client_id,
            "azp": client_id,
            "ver": "2.0",
            "uti": uuid.uuid4().hex[:22],
        }
        if scp is not None:
            claims["scp"] = " ".join(scp)
        if roles is not None:
            claims["roles"] = list(roles)
        if amr is not None:
            claims["amr"] = list(amr)
        if upn:
            claims["upn"] = upn
        claims["sub"] = claims["oid"]
        if extra:
            claims.update(extra)
        return self.sign(claims)

    def validate(self, token: str, audiences: Iterable[str], *, leeway: int = 0) -> dict[str, Any]:
        """The token's claims, or TokenRejected naming the first failed check.

        Checks, in order: structure, algorithm and key, signature, issuer, audience, lifetime.
        """
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenRejected("malformed token")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            signature = b64url_decode(parts[2])
        except ValueError:
            raise TokenRejected("malformed token") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenRejected("malformed token")
        if header.get("alg") != "RS256":
            raise TokenRejected(f"unsupported signing algorithm {header.get('alg')!r}")
        try:
            self._key.public_key().verify(
                signature, f"{parts[0]}.{parts[1]}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
            )
        except (InvalidSignature, ValueError):
            raise TokenRejected("bad signature: the token was not issued by this sandbox") from None
        tenant = claims.get("tid")
        if not isinstance(tenant, str) or claims.get("iss") != self.issuer_for(tenant):
            raise TokenRejected(f"wrong issuer {claims.get('iss')!r}")
        allowed = set(audiences)
        if claims.get("aud") not in allowed:
            raise TokenRejected(f"wrong audience {claims.get('aud')!r}; expected one of {sorted(allowed)}")
        now = time.time()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or now > exp + leeway:
            raise TokenRejected("the token is expired")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and now + leeway < nbf:
            raise TokenRejected("the token is not valid yet")
        return claims
