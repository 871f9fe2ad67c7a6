"""The admin API's token check against the sandbox's Entra: its published keys fetched over HTTPS and cached,
every claim that matters checked, and the identity a decision is recorded under."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from sandbox import ids
from sandbox.core import Sandbox
from sandbox.testing import sandbox_settings
from shared.auth.operator_tokens import (
    ROLE_DECIDE,
    ROLE_READ,
    KeysUnavailable,
    OperatorTokens,
    TokenForbidden,
    TokenInvalid,
    authenticate,
    identity_of,
)
from shared.http import verify_from_settings
from tests.admin.auth_support import ALICE, BOB, app_token, bearer, user_token


def validator(sandbox: Sandbox, fetched: list[str], clock: Any = time.time) -> OperatorTokens:
    verify = verify_from_settings(sandbox_settings(sandbox))

    def fetch(url: str) -> Any:
        fetched.append(url)
        return httpx.get(url, verify=verify, timeout=30).raise_for_status().json()

    return OperatorTokens(authority_host=sandbox.url("entra"), tenant_id=ids.PARTNER_TENANT_ID,
                          client_id=ids.ADMIN_API_CLIENT_ID, fetch_json=fetch, clock=clock)


def test_keys_are_read_from_the_openid_configuration_once_and_reused(fresh_sandbox: Sandbox) -> None:
    fetched: list[str] = []
    tokens = validator(fresh_sandbox, fetched)
    alice = tokens.validate(user_token(fresh_sandbox, ALICE))
    assert (alice.identity, alice.kind) == (ALICE, "user") and alice.allows(ROLE_DECIDE) and alice.allows(ROLE_READ)
    for _ in range(20):
        tokens.validate(user_token(fresh_sandbox, BOB))
    assert fetched[0].endswith(f"/{ids.PARTNER_TENANT_ID}/v2.0/.well-known/openid-configuration")
    assert len(fetched) == 2  # the configuration and the key set, once for 21 tokens
    app = tokens.validate(app_token(fresh_sandbox))
    assert (app.identity, app.kind) == (f"app:{ids.OPERATOR_APP_CLIENT_ID}", "app")


def test_an_unknown_key_id_refetches_the_keys_at_most_once_a_minute(fresh_sandbox: Sandbox) -> None:
    now = [1_000_000.0]
    fetched: list[str] = []
    tokens = validator(fresh_sandbox, fetched, clock=lambda: now[0])
    good = user_token(fresh_sandbox, ALICE)
    tokens.validate(good)
    rolled = fresh_sandbox.tokens.sign(  # a key id the tenant does not publish (yet)
        {"aud": ids.ADMIN_API_CLIENT_ID, "tid": ids.PARTNER_TENANT_ID}, header={"kid": "next-key"})
    for _ in range(5):
        with pytest.raises(TokenInvalid, match="key the tenant publishes"):
            tokens.validate(rolled)
    assert len(fetched) == 2  # no refetch within the minute, whatever a caller sends
    now[0] += 61
    with pytest.raises(TokenInvalid):
        tokens.validate(rolled)
    assert len(fetched) == 4  # refetched once
    tokens.validate(good)


def test_each_claim_that_matters_is_checked(fresh_sandbox: Sandbox) -> None:
    tokens = validator(fresh_sandbox, [])
    issuer = fresh_sandbox.tokens
    now = int(time.time())
    base = {"aud": ids.ADMIN_API_CLIENT_ID, "iss": issuer.issuer_for(ids.PARTNER_TENANT_ID),
            "tid": ids.PARTNER_TENANT_ID, "iat": now, "nbf": now - 10, "exp": now + 600, "upn": ALICE,
            "scp": "user_impersonation",
            "roles": [ROLE_DECIDE]}
    assert tokens.validate(issuer.sign(base)).identity == ALICE
    assert tokens.validate(issuer.sign({**base, "aud": f"api://{ids.ADMIN_API_CLIENT_ID}"})).identity == ALICE
    other_tenant = issuer.issuer_for(ids.CUSTOMER_FABRIKAM)
    for changes, named in (({"iss": other_tenant, "tid": ids.CUSTOMER_FABRIKAM}, "tenant"),
                           ({"tid": ids.CUSTOMER_FABRIKAM}, "tenant"),
                           ({"aud": ids.GRAPH_APP_CLIENT_ID}, "audience"),
                           ({"exp": now - 120}, "expired"),
                           ({"nbf": now + 600}, "not valid yet")):
        with pytest.raises(TokenInvalid, match=named):
            tokens.validate(issuer.sign({**base, **changes}))
    for missing in ("exp", "nbf", "aud", "iss"):
        with pytest.raises(TokenInvalid):
            tokens.validate(issuer.sign({k: v for k, v in base.items() if k != missing}))
    header, payload, _signature = issuer.sign(base).split(".")
    with pytest.raises(TokenInvalid, match="signature"):
        tokens.validate(f"{header}.{issuer.sign({**base, 'upn': 'mallory@contoso-csp.example'}).split('.')[1]}."
                        f"{_signature}")
    unsigned = issuer.sign(base, header={"alg": "none"})
    with pytest.raises(TokenInvalid, match="RS256"):
        tokens.validate(unsigned)
    assert payload


def test_the_identity_recorded_is_the_tokens() -> None:
    assert identity_of({"idtyp": "app", "azp": "AbC", "oid": "x"}) == ("app:abc", "app")
    assert identity_of({"appid": "abc", "roles": ["r"]}) == ("app:abc", "app")  # v1 app token: no scp, no user
    assert identity_of({"scp": "x", "preferred_username": "Alice@Contoso.com"}) == ("alice@contoso.com", "user")
    assert identity_of({"scp": "x", "upn": "a@c", "preferred_username": "b@c"}) == ("a@c", "user")
    assert identity_of({"scp": "x", "oid": "o-1"}) == ("oid:o-1", "user")


def test_authenticate_names_the_missing_role_and_refuses_missing_tokens(fresh_sandbox: Sandbox) -> None:
    settings = sandbox_settings(fresh_sandbox)
    with pytest.raises(TokenInvalid, match="no access token"):
        authenticate(settings, {}, ROLE_READ)
    with pytest.raises(TokenInvalid, match="no access token"):
        authenticate(settings, {"Authorization": "Basic abc"}, ROLE_READ)
    with pytest.raises(TokenForbidden, match=ROLE_DECIDE):
        authenticate(settings, bearer(user_token(fresh_sandbox, BOB)), ROLE_DECIDE)
    assert authenticate(settings, {"authorization": f"bearer {user_token(fresh_sandbox, ALICE)}"},
                        ROLE_DECIDE).identity == ALICE


def test_unreachable_keys_are_unavailable_not_a_pass() -> None:
    def fetch(url: str) -> Any:
        raise KeysUnavailable(f"cannot read {url}")

    tokens = OperatorTokens(authority_host="https://login.example", tenant_id=ids.PARTNER_TENANT_ID,
                            client_id=ids.ADMIN_API_CLIENT_ID, fetch_json=fetch)
    token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJhdWQiOiJ4In0.c2ln"
    with pytest.raises(KeysUnavailable):
        tokens.validate(token)


def test_keys_already_held_stay_good_while_entra_is_unreachable(fresh_sandbox: Sandbox) -> None:
    now = [1_000_000.0]
    fetched: list[str] = []
    down = [False]
    inner = validator(fresh_sandbox, fetched, clock=lambda: now[0])
    real_fetch = inner._fetch_json

    def flaky(url: str) -> Any:
        if down[0]:
            raise KeysUnavailable(f"cannot read {url}")
        return real_fetch(url)

    inner._fetch_json = flaky
    good = user_token(fresh_sandbox, ALICE)
    inner.validate(good)
    down[0] = True
    now[0] += 2 * 24 * 3600  # past the keys' refresh age, and Entra cannot be reached
    assert inner.validate(good).identity == ALICE
    rolled = fresh_sandbox.tokens.sign({"aud": ids.ADMIN_API_CLIENT_ID}, header={"kid": "next-key"})
    with pytest.raises(KeysUnavailable):  # a key it never saw cannot be checked: 503, not a pass
        inner.validate(rolled)
