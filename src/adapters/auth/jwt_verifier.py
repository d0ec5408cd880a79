"""JWT bearer tokens verified with PyJWT against an explicit algorithm allowlist.

Keys come only from configuration (``JWT_SECRET`` or ``JWT_PUBLIC_KEY``) or the configured JWKS URL;
never from the token (``jku``/``x5u``/embedded ``jwk`` headers are ignored). Every refusal is the same
``InvalidToken`` so that the reason is no oracle; the reason is only logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import jwt

from domain.errors import InvalidToken
from domain.sessions import Principal

log = logging.getLogger(__name__)


def _is_admin(claims: Mapping[str, Any]) -> bool:
    if claims.get("role") == "admin":
        return True
    roles = claims.get("roles")
    if isinstance(roles, list) and "admin" in roles:
        return True
    meta = claims.get("app_metadata")
    if isinstance(meta, dict):
        meta_roles = meta.get("roles")
        if isinstance(meta_roles, list) and "admin" in meta_roles:
            return True
    return False


def session_id_of(claims: Mapping[str, Any], token: str) -> str:
    """``session_id`` claim, else ``jti``, else a hash of the token (never the token's bytes)."""
    for name in ("session_id", "jti"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return "tok_" + hashlib.sha256(token.encode()).hexdigest()[:32]


class JwtVerifier:
    def __init__(
        self,
        algorithms: Sequence[str],
        secret: str | None = None,
        public_key: str | None = None,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway_seconds: int = 10,
    ) -> None:
        if not algorithms:
            raise ValueError("at least one JWT algorithm is required")
        self._algorithms = list(algorithms)
        self._symmetric = all(a.startswith("HS") for a in algorithms)
        self._secret = secret
        self._public_key = public_key
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5) if jwks_url else None
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway_seconds

    def _key(self, token: str) -> Any:
        if self._symmetric:
            return self._secret
        if self._public_key:
            return self._public_key
        assert self._jwks is not None
        return self._jwks.get_signing_key_from_jwt(token).key

    def decode(self, token: str) -> dict[str, Any]:
        """Verify and return the claims; raise ``InvalidToken`` for any reason."""
        try:
            key = self._key(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={
                    "require": ["sub", "exp", "iat"],
                    "verify_aud": self._audience is not None,
                    "verify_iss": self._issuer is not None,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            log.info("token refused: %s", type(exc).__name__)
            raise InvalidToken() from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 255:
            raise InvalidToken()
        if not isinstance(claims.get("iat"), int | float) or not isinstance(claims.get("exp"), int | float):
            raise InvalidToken()
        return claims

    async def verify(self, token: str) -> Principal:
        if self._jwks is not None:
            claims = await asyncio.to_thread(self.decode, token)  # the JWKS fetch is blocking I/O
        else:
            claims = self.decode(token)
        jti = claims.get("jti")
        return Principal(
            user_id=claims["sub"],
            session_id=session_id_of(claims, token),
            is_admin=_is_admin(claims),
            issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            token_id=jti if isinstance(jti, str) else None,
        )


def issue_token(
    secret: str,
    sub: str,
    *,
    role: str | None = None,
    ttl_seconds: int = 3600,
    session_id: str | None = None,
    audience: str | None = None,
    issuer: str | None = None,
    algorithm: str = "HS256",
    now: float | None = None,
) -> str:
    """Sign an HMAC token (the ``payments token`` command and tests)."""
    iat = int(now if now is not None else time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": iat, "exp": iat + ttl_seconds, "jti": uuid.uuid4().hex}
    if role:
        claims["role"] = role
    if session_id:
        claims["session_id"] = session_id
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=algorithm)
