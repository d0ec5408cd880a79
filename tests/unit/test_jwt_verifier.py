"""JWT bearer verification: the API.md rules, each refusal the same InvalidToken."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from adapters.auth.jwt_verifier import JwtVerifier, issue_token
from domain.errors import InvalidToken

SECRET = "unit-test-secret-of-at-least-32-bytes!!"


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "user-1", "iat": now, "exp": now + 600, "jti": "jti-1"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def hs(
    payload: dict[str, Any], secret: str = SECRET, alg: str = "HS256", headers: dict[str, Any] | None = None
) -> str:
    return jwt.encode(payload, secret, algorithm=alg, headers=headers)


@pytest.fixture
def verifier() -> JwtVerifier:
    return JwtVerifier(["HS256"], secret=SECRET, leeway_seconds=10)


async def test_valid_token_gives_principal_with_jti_as_session(verifier: JwtVerifier) -> None:
    p = await verifier.verify(hs(claims()))
    assert (p.user_id, p.session_id, p.is_admin, p.token_id) == ("user-1", "jti-1", False, "jti-1")


async def test_session_id_claim_wins_over_jti(verifier: JwtVerifier) -> None:
    p = await verifier.verify(hs(claims(session_id="sess-9")))
    assert p.session_id == "sess-9"


async def test_session_id_falls_back_to_a_hash_not_the_token(verifier: JwtVerifier) -> None:
    token = hs(claims(jti=None))
    p = await verifier.verify(token)
    assert p.session_id.startswith("tok_") and token not in p.session_id and len(p.session_id) == 36


@pytest.mark.parametrize(
    "token_kind",
    [
        "wrong_secret",
        "alg_none",
        "alg_not_allowed",
        "expired",
        "no_sub",
        "no_exp",
        "no_iat",
        "garbage",
        "empty_sub",
        "unknown_crit",
        "iat_in_future",
    ],
)
async def test_every_bad_token_is_refused_the_same_way(verifier: JwtVerifier, token_kind: str) -> None:
    now = int(time.time())
    token = {
        "wrong_secret": lambda: hs(claims(), secret="another-secret-another-secret-1234"),
        "alg_none": lambda: jwt.encode(claims(), None, algorithm="none"),
        "alg_not_allowed": lambda: hs(claims(), alg="HS512"),
        "expired": lambda: hs(claims(iat=now - 100, exp=now - 11)),
        "no_sub": lambda: hs(claims(sub=None)),
        "no_exp": lambda: hs(claims(exp=None)),
        "no_iat": lambda: hs(claims(iat=None)),
        "garbage": lambda: "not.a.jwt",
        "empty_sub": lambda: hs(claims(sub="")),
        "unknown_crit": lambda: hs(claims(), headers={"crit": ["exp-unknown"], "exp-unknown": 1}),
        "iat_in_future": lambda: hs(claims(iat=now + 3600, exp=now + 7200)),
    }[token_kind]()
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(token)
    assert info.value.code == "invalid_token"
    assert info.value.detail == InvalidToken().detail


async def test_expiry_within_leeway_is_accepted(verifier: JwtVerifier) -> None:
    now = int(time.time())
    p = await verifier.verify(hs(claims(iat=now - 100, exp=now - 5)))
    assert p.user_id == "user-1"


async def test_audience_and_issuer_are_checked_exactly_when_configured() -> None:
    v = JwtVerifier(["HS256"], secret=SECRET, audience="payments", issuer="https://idp.test")
    ok = await v.verify(hs(claims(aud="payments", iss="https://idp.test")))
    assert ok.user_id == "user-1"
    for bad in (
        claims(aud="payment", iss="https://idp.test"),
        claims(aud="payments", iss="https://idp.test/"),
        claims(iss="https://idp.test"),
        claims(aud="payments"),
    ):
        with pytest.raises(InvalidToken):
            await v.verify(hs(bad))


async def test_tokens_carrying_aud_and_iss_are_accepted_when_not_configured(verifier: JwtVerifier) -> None:
    p = await verifier.verify(hs(claims(aud="authenticated", iss="https://x.supabase.co/auth/v1")))
    assert p.user_id == "user-1"


@pytest.mark.parametrize(
    ("extra", "admin"),
    [
        ({"role": "admin"}, True),
        ({"role": "authenticated"}, False),
        ({"roles": ["viewer", "admin"]}, True),
        ({"app_metadata": {"roles": ["admin"]}}, True),
        ({"app_metadata": {"provider": "email"}}, False),
        ({"roles": "admin"}, False),
    ],
)
async def test_admin_detection(verifier: JwtVerifier, extra: dict[str, Any], admin: bool) -> None:
    p = await verifier.verify(hs(claims(**extra)))
    assert p.is_admin is admin


async def test_supabase_style_token_works_unchanged(verifier: JwtVerifier) -> None:
    now = int(time.time())
    token = hs(
        {
            "aud": "authenticated",
            "exp": now + 3600,
            "iat": now,
            "iss": "https://abc.supabase.co/auth/v1",
            "sub": "4f5e2c1a-0000-4000-8000-000000000001",
            "email": "a@example.com",
            "role": "authenticated",
            "session_id": "b3f1c2d4-0000-4000-8000-000000000002",
            "app_metadata": {"provider": "email"},
            "is_anonymous": False,
        }
    )
    p = await verifier.verify(token)
    assert p.session_id == "b3f1c2d4-0000-4000-8000-000000000002" and not p.is_admin


def _rsa_pair() -> tuple[Any, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return key, pem


async def test_rs256_with_configured_public_key() -> None:
    key, pem = _rsa_pair()
    v = JwtVerifier(["RS256"], public_key=pem)
    p = await v.verify(jwt.encode(claims(), key, algorithm="RS256"))
    assert p.user_id == "user-1"


async def test_hmac_token_signed_with_the_public_key_is_refused_algorithm_confusion() -> None:
    _, pem = _rsa_pair()
    v = JwtVerifier(["RS256"], public_key=pem)
    import base64
    import hashlib
    import hmac
    import json

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims()).encode())
    sig = b64(hmac.new(pem.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    with pytest.raises(InvalidToken):
        await v.verify(f"{head}.{body}.{sig}")


async def test_es256_token_from_another_key_is_refused() -> None:
    mine = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    pem = (
        mine.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    v = JwtVerifier(["ES256"], public_key=pem)
    assert (await v.verify(jwt.encode(claims(), mine, algorithm="ES256"))).user_id == "user-1"
    with pytest.raises(InvalidToken):
        await v.verify(jwt.encode(claims(), other, algorithm="ES256"))


async def test_issue_token_round_trips_with_role_and_session(verifier: JwtVerifier) -> None:
    token = issue_token(SECRET, "admin-7", role="admin", ttl_seconds=60, session_id="s-1")
    p = await verifier.verify(token)
    assert (p.user_id, p.is_admin, p.session_id) == ("admin-7", True, "s-1")
    assert (p.expires_at - p.issued_at).total_seconds() == 60
