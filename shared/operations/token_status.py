"""Token status: how long the SAM refresh token has left, and the last token error, with the fix.

Why: the Secure Application Model refresh token expires after 90 days unused, and an MFA or
consent change kills it at once; either silently stops every poll (the top complaint about peer
tools). The app redeems it on every poll and writes each rolled token back to Key Vault as a new
secret version, so the newest version's time is when it was last rolled, and it expires if unused
90 days later. Token failures are recorded by the sync runs (``shared.intake.checkpoints``).

Used by ``fraud-responder token status``, the admin API, /api/health's tokens part and the
token-health watch. Never reads out or returns a token value.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from shared.auth.hosts import host_of, is_microsoft_key_vault
from shared.formats import iso, one_line
from shared.intake.checkpoints import NOT_PERSISTED_KIND, WRITE_PRINCIPAL
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.auth.secrets import SecretStore
    from shared.clients.partner_center import PartnerCenterClient
    from shared.storage.tables import TableStore

REFRESH_TOKEN_LIFETIME_DAYS: Final = 90
"""Entra expires a refresh token that has not been redeemed for 90 days."""

OK: Final = "ok"
EXPIRING: Final = "expiring"
EXPIRED: Final = "expired"
FAILING: Final = "failing"
NOT_PERSISTED: Final = "not_persisted"
"""A rolled refresh token lives only in a process's memory: Key Vault refused the write-back."""
UNKNOWN: Final = "unknown"


RECONSENT_KINDS: Final = frozenset({"refresh_token_expired", "mfa_required", "consent_required"})
"""Token-health kinds an Admin Agent fixes by consenting again (shared.auth.errors)."""


def store_secret_command(settings: Settings, secret_name: str, file_name: str) -> str:
    """How to add a secret version from a file: `az keyvault secret set` for a Microsoft vault."""
    url = settings.key_vault_url
    if is_microsoft_key_vault(url):
        vault = host_of(url).split(".", 1)[0]
        return f"az keyvault secret set --vault-name {vault} --name {secret_name} --file {file_name} --encoding utf-8"
    return f"add it as a new version of secret {secret_name} in the vault at {url or 'KEY_VAULT_URL'}"


def reconsent_steps(settings: Settings) -> list[str]:
    """The exact steps that give the app a new refresh token, with this deployment's names filled in."""
    tenant = settings.partner_tenant_id or "<partner tenant id>"
    app = settings.partner_app_client_id or "<PARTNER_APP_CLIENT_ID>"
    secret = settings.refresh_token_secret_name
    return [
        f"An Admin Agent of partner tenant {tenant} signs in with MFA and consents again to the Secure "
        f"Application Model app {app}, for example in PowerShell with the PartnerCenter module: "
        f"$token = New-PartnerAccessToken -ApplicationId {app} -Credential (Get-Credential -UserName {app} "
        f"-Message 'client secret of the app') -Scopes 'https://api.partnercenter.microsoft.com/user_impersonation' "
        f"-ServicePrincipal -Tenant {tenant} -UseAuthorizationCode",
        f"Write $token.RefreshToken to a file only you can read and store it as a new version of the Key Vault "
        f"secret: {store_secret_command(settings, secret, 'refresh-token.txt')}; then delete the file (never "
        "paste the token into a chat, a ticket or a command line).",
        "Check it: `fraud-responder token status --check` (days left restarts at "
        f"{REFRESH_TOKEN_LIFETIME_DAYS}), then `fraud-responder poll --once`.",
    ]


def client_secret_steps(settings: Settings, secret_name: str) -> list[str]:
    return [
        f"Create a new client secret for the app registration and store it as a new version of the Key Vault "
        f"secret {secret_name}: {store_secret_command(settings, secret_name, 'client-secret.txt')}; then delete "
        "the file.",
        "Check it: `fraud-responder token status --check`, then `fraud-responder poll --once`.",
    ]


def key_vault_write_steps(settings: Settings) -> list[str]:
    """What to do when the rolled refresh token could not be stored."""
    secret = settings.refresh_token_secret_name
    return [
        f"Let the app write secret {secret}: grant its identity the 'Key Vault Secrets Officer' role on the vault "
        f"{settings.key_vault_url or 'KEY_VAULT_URL'} (read-only 'Key Vault Secrets User' is not enough), and "
        "check that the vault is reachable and not throttling.",
        "Do not restart or redeploy the app until then: the only working refresh token may be in its memory. The "
        "next token redemption (every poll) writes it and clears this warning.",
        "If the app restarted meanwhile and tokens are refused, an Admin Agent must consent again (`fraud-responder "
        "token status` prints the steps).",
    ]


GRAPH_MODE_PARTITION: Final = "graph_alerts"
GRAPH_MODE_ROW: Final = "token"


def record_graph_alerts_mode(store: TableStore, *, mode: str, reason: str = "") -> None:
    """Which token read Graph partner alerts in the last run: ``app_only``, or ``delegated`` (the SAM
    token, after Graph refused the app-only one with Unauthorized_MissingMFA). ``since`` is when the
    mode last changed."""
    from shared.names import CHECKPOINTS_TABLE

    now = datetime.now(UTC)
    current = store.get(CHECKPOINTS_TABLE, GRAPH_MODE_PARTITION, GRAPH_MODE_ROW) or {}
    since = current.get("since") if current.get("mode") == mode else now
    store.upsert(CHECKPOINTS_TABLE, {"PartitionKey": GRAPH_MODE_PARTITION, "RowKey": GRAPH_MODE_ROW, "mode": mode,
                                     "reason": reason[:1000], "since": since, "checked_at": now}, mode="replace")


def graph_alerts_mode(store: TableStore) -> dict[str, Any]:
    """``{"mode": app_only | delegated | unknown, "reason", "since", "checked_at"}``."""
    from shared.names import CHECKPOINTS_TABLE

    row = store.get(CHECKPOINTS_TABLE, GRAPH_MODE_PARTITION, GRAPH_MODE_ROW) or {}
    return {"mode": str(row.get("mode") or "unknown"), "reason": str(row.get("reason") or ""),
            "since": iso(row.get("since")), "checked_at": iso(row.get("checked_at"))}


def refresh_token_age(settings: Settings, *, now: datetime | None = None,
                      secrets: SecretStore | None = None) -> dict[str, Any]:
    """When the refresh token was last rolled, when it expires if unused, and the days left.

    ``error`` is set (and the times are None) when Key Vault is not configured or cannot be read.
    """
    now = now or datetime.now(UTC)
    doc: dict[str, Any] = {
        "secret_name": settings.refresh_token_secret_name, "vault": settings.key_vault_url,
        "last_rolled_at": None, "expires_if_unused_at": None, "days_left": None,
        "lifetime_days": REFRESH_TOKEN_LIFETIME_DAYS, "warn_days": settings.token_warn_days, "error": "",
    }
    if not settings.key_vault_url:
        doc["error"] = ("KEY_VAULT_URL is not set, so the refresh token's age is unknown; example: "
                        "KEY_VAULT_URL=https://contoso-fraud-kv.vault.azure.net")
        return doc
    from shared.auth.secrets import SecretStore, SecretStoreError

    store = secrets or SecretStore(settings)
    try:
        info = store.get_value(settings.refresh_token_secret_name).info  # the value is dropped at once
    except SecretStoreError as exc:
        doc["error"] = str(exc)
        return doc
    finally:
        if secrets is None:
            store.close()
    rolled = info.updated_on or info.created_on
    if rolled is None:
        doc["error"] = f"Key Vault reports no time for secret {settings.refresh_token_secret_name}"
        return doc
    expires = rolled + timedelta(days=REFRESH_TOKEN_LIFETIME_DAYS)
    doc.update(last_rolled_at=iso(rolled), expires_if_unused_at=iso(expires),
               days_left=max(0, math.floor((expires - now).total_seconds() / 86400)))
    return doc


def principals(store: TableStore) -> list[dict[str, Any]]:
    """Each token the app used (partner_center, graph_app, customer:<tenant>) with its last outcome."""
    from shared.intake.checkpoints import token_health

    rows = []
    for row in token_health(store):
        detail = row["detail"] or {}
        rows.append({
            "principal": row["principal"], "ok": row["ok"], "checked_at": iso(row["checked_at"]),
            "last_ok_at": iso(row["last_ok_at"]), "failed_at": iso(row["failed_at"]),
            "kind": "" if row["ok"] else str(detail.get("kind", "token_error")),
            "code": None if row["ok"] else detail.get("code"),
            "message": "" if row["ok"] else str(detail.get("message", "token request failed")),
        })
    rows.sort(key=lambda r: r["principal"])
    return rows


def token_status(settings: Settings, store: TableStore, *, now: datetime | None = None,
                 secrets: SecretStore | None = None) -> dict[str, Any]:
    """The whole picture: refresh-token age, every principal's last outcome, warnings and next steps.

    ``warnings`` holds one line per failing token and the expiry warning (also alone in
    ``expiry_warning``). ``state`` is failing (a token is refused now), expired, not_persisted (a rolled refresh token
    could not be written back to Key Vault and lives only in a process's memory), expiring (fewer
    than TOKEN_WARN_DAYS days left), ok, or unknown (the age cannot be read and nothing failed).
    ``ok`` is False for failing, expired and not_persisted: expiring is a warning, the app still works.
    """
    now = now or datetime.now(UTC)
    age = refresh_token_age(settings, now=now, secrets=secrets)
    rolled = age["last_rolled_at"]
    # A write-back failure is over once the vault holds a newer version (any instance wrote it).
    used = [p for p in principals(store) if p["principal"] != WRITE_PRINCIPAL or not rolled
            or p["ok"] or (p["failed_at"] or "") > rolled]
    unsaved = [p for p in used if p["kind"] == NOT_PERSISTED_KIND]
    failing = [p for p in used if not p["ok"] and p["kind"] != NOT_PERSISTED_KIND]
    last_error = max(failing + unsaved, key=lambda p: p["failed_at"] or "", default=None)
    warnings: list[str] = []
    steps: list[str] = []
    days = age["days_left"]
    warnings.extend(f"{p['principal']}: {p['message']}" for p in failing + unsaved)
    if failing:
        state = FAILING
    elif days is not None and days <= 0:
        state = EXPIRED
    elif unsaved:
        state = NOT_PERSISTED
    elif days is not None and days < settings.token_warn_days:
        state = EXPIRING
    else:
        state = OK if days is not None else UNKNOWN
    expiry_warning = ""
    readiness = mfa_readiness(settings, store)
    if readiness["ready"] is False:
        mine = readiness["this_app"]
        missing = mine["total_requests"] - mine["mfa_compliant_requests"]
        warnings.append(
            f"partner center MFA: {missing} of {mine['total_requests']} App+User request(s) of app "
            f"{mine['application_id']} in the last {readiness['window_days']} days carried no MFA claim; Partner "
            "Center refuses those (900421): have an Admin Agent consent again, signing in with MFA")
    graph_mode = graph_alerts_mode(store)
    if graph_mode["mode"] == "delegated":
        warnings.append(
            f"graph alerts: read with the delegated SAM token since {(graph_mode['since'] or '')[:19]} because Graph "
            f"answered the app-only token 403 Unauthorized_MissingMFA; they now depend on the refresh token (keep it "
            "alive, consent with MFA) until Graph accepts app-only again")
    if days is not None and days < settings.token_warn_days:
        expiry_warning = (
            f"the SAM refresh token was last rolled {age['last_rolled_at'][:10]} and expires if unused on "
            f"{age['expires_if_unused_at'][:10]} ({days} day(s) left, warning at fewer than "
            f"{settings.token_warn_days}): check that polling runs, or consent again now")
        warnings.append(expiry_warning)
    kinds = {p["kind"] for p in failing}
    if kinds & RECONSENT_KINDS or state in (EXPIRED, EXPIRING) or any(
            p["code"] == 900421 for p in failing):  # Partner Center's "MFA required"
        steps = reconsent_steps(settings)
    elif "client_secret_invalid" in kinds:
        steps = client_secret_steps(settings, settings.partner_app_secret_name
                                    if any(p["principal"] == "partner_center" for p in failing)
                                    else settings.graph_app_secret_name)
    elif state == NOT_PERSISTED:
        steps = key_vault_write_steps(settings)
    return {
        "ok": state not in (FAILING, EXPIRED, NOT_PERSISTED), "state": state, "checked_at": iso(now),
        "refresh_token": age, "principals": used, "last_error": last_error, "warnings": warnings,
        "expiry_warning": expiry_warning, "next_steps": steps, "graph_alerts": graph_mode,
        "mfa_readiness": readiness,
    }


def check_now(settings: Settings, store: TableStore) -> dict[str, Any]:
    """Redeem the refresh token for Partner Center now, call Partner Center with it (the MFA
    adoption status, which is also stored), and record the outcome as token health.

    This rolls the refresh token, exactly as a poll does. Returns ``{"ok", "message"}``.
    """
    from shared.auth import PARTNER_CENTER_RESOURCE
    from shared.auth.errors import TokenHealthError
    from shared.auth.partner_tokens import PartnerTokenProvider
    from shared.auth.secrets import SecretStoreError
    from shared.clients.partner_center import PartnerCenterClient
    from shared.http import PartnerCenterMfaRequired
    from shared.intake.checkpoints import record_token_health

    try:
        tokens = PartnerTokenProvider(settings)
        tokens.token(PARTNER_CENTER_RESOURCE)
    except TokenHealthError as exc:
        record_token_health(store, principal="partner_center", ok=False, detail=exc.to_health())
        return {"ok": False, "message": exc.operator_message}
    except (SecretStoreError, ValueError) as exc:
        return {"ok": False, "message": str(exc)}
    with PartnerCenterClient.from_settings(settings, token=lambda: tokens.token(PARTNER_CENTER_RESOURCE)) as client:
        refused = refresh_mfa_readiness(settings, store, client)
    if isinstance(refused, PartnerCenterMfaRequired):
        message = (f"Partner Center refused the App+User token without MFA (900421): {refused.message}. "
                   "Re-consent with an MFA sign-in and store the new refresh token in Key Vault.")
        record_token_health(store, principal="partner_center", ok=False,
                            detail={"kind": "mfa_required", "code": 900421, "message": message})
        return {"ok": False, "message": message}
    record_token_health(store, principal="partner_center", ok=True)
    return {"ok": True, "message": "a Partner Center token was issued from the refresh token"}


# --- MFA readiness (Partner Center's App+User MFA enforcement) -------------------------------------

MFA_PARTITION: Final = "mfa_readiness"
MFA_ROW: Final = "partner_center"
MFA_WINDOW_DAYS: Final = 7
MFA_REFRESH: Final = timedelta(days=1)
MFA_RETRY: Final = timedelta(hours=1)
"""After a failed read, the poll tries again this much later."""


def refresh_mfa_readiness(settings: Settings, store: TableStore, client: PartnerCenterClient) -> Exception | None:
    """Read GET /v1/applicationmfaadoptionstatus for the last MFA_WINDOW_DAYS days and store it.

    Why: since 1 April 2026 Partner Center refuses App+User calls whose token has no MFA claim
    (900421); the adoption status shows, per application, how many recent calls carried MFA.
    On failure the error is stored beside the last good figures and returned (never raised).
    """
    from shared.names import CHECKPOINTS_TABLE

    now = datetime.now(UTC)
    row: dict[str, Any] = {"PartitionKey": MFA_PARTITION, "RowKey": MFA_ROW, "checked_at": now}
    failure: Exception | None = None
    try:
        start = (now - timedelta(days=MFA_WINDOW_DAYS - 1)).date().isoformat()
        records = client.application_mfa_adoption_status(start_date=start, end_date=now.date().isoformat())
    except Exception as exc:
        failure = exc
        row["error"] = one_line(exc, 1000)
    else:
        totals: dict[str, list[Any]] = {}
        for record in records:
            entry = totals.setdefault(record.application_id, [record.application_name, 0, 0])
            entry[1] += record.mfa_compliant_requests
            entry[2] += record.total_requests
        apps = [{"application_id": app, "application_name": name, "mfa_compliant_requests": ok, "total_requests": n}
                for app, (name, ok, n) in sorted(totals.items())]
        row.update(error="", read_at=now, applications=json.dumps(apps))
    store.upsert(CHECKPOINTS_TABLE, row, mode="merge")
    return failure


def mfa_readiness(settings: Settings, store: TableStore) -> dict[str, Any]:
    """The stored MFA adoption status: this app's App+User calls in the window and whether all had MFA.

    ``ready`` is None when never read (or this app made no App+User call in the window), True when
    every call carried MFA, False otherwise. ``error`` is the last read's failure, if it failed.
    """
    from shared.names import CHECKPOINTS_TABLE

    row = store.get(CHECKPOINTS_TABLE, MFA_PARTITION, MFA_ROW) or {}
    apps = json.loads(row.get("applications") or "[]")
    app_id = settings.partner_app_client_id.lower()
    mine: dict[str, Any] = next((a for a in apps if a["application_id"] == app_id), {
        "application_id": app_id, "application_name": "", "mfa_compliant_requests": 0, "total_requests": 0})
    total, compliant = int(mine["total_requests"]), int(mine["mfa_compliant_requests"])
    return {
        "checked_at": iso(row.get("checked_at")), "read_at": iso(row.get("read_at")),
        "window_days": MFA_WINDOW_DAYS, "ready": None if not total else compliant >= total,
        "this_app": mine, "applications": apps, "error": str(row.get("error") or ""),
        "source": "GET /v1/applicationmfaadoptionstatus",
    }


def refresh_mfa_readiness_if_due(settings: Settings, store: TableStore, *, now: datetime | None = None) -> bool:
    """Refresh the stored readiness when it is older than a day (the poll calls this); True if read."""
    from shared.auth import PARTNER_CENTER_RESOURCE
    from shared.auth.partner_tokens import PartnerTokenProvider
    from shared.clients.partner_center import PartnerCenterClient

    now = now or datetime.now(UTC)
    stored = mfa_readiness(settings, store)
    every = MFA_RETRY if stored["error"] else MFA_REFRESH
    if stored["checked_at"] and now - datetime.fromisoformat(stored["checked_at"]) < every:
        return False
    tokens = PartnerTokenProvider(settings)
    with PartnerCenterClient.from_settings(settings, token=lambda: tokens.token(PARTNER_CENTER_RESOURCE)) as client:
        refresh_mfa_readiness(settings, store, client)
    return True
