"""rotate_credentials: new client secrets for implicated apps; forced password change for implicated users.

Targets come from the investigation: one per implicated service principal (kind
``service_principal``, when the rule's ``applications`` is true) and one per implicated user
(kind ``user``, when ``users`` is true). All calls go to Graph in the customer tenant (SAM token).

Service principals. Every password credential on the service principal AND on its application
registration authenticates as the same app id, so all of them must go, wherever they live. The new
secret is added to the application registration when it is in the customer's tenant (where the
customer manages its secrets), else to the service principal itself (an app registered elsewhere).
Steps, each safe to repeat:

1. addPassword with displayName ``rotated by fraud-responder <alert id>`` (the marker);
2. store its secretText in Key Vault as ``rotated-<customer tenant>-<app id>`` (one secret per
   customer and app; a new version per rotation) for the hand-off to the customer;
3. write a note (``notes``) with the new key id and the secret's version: "stored";
4. removePassword for every other credential on both objects.

Crash safety: verify = exactly one marker credential, it is the one the note says was stored, and
no other credential remains. After a crash between 1 and 3 the marker credential exists but its
secret may be nowhere (Graph shows secretText only once), so it is removed and a new one added;
after a crash in 4 the stored one is kept and only the removal is finished. Secret values never
reach ``Outcome.data``, logs, exceptions or rows: key ids, the secret name and version only.

Users. ``passwordProfile`` gets ``forceChangePasswordNextSignIn`` and
``forceChangePasswordNextSignInWithMfa``: whoever holds the password must pass MFA before setting
a new one (an attacker with only the password cannot). verify reads the user's profile.

Not reversible: a removed secret cannot be restored (Graph never shows it again); the customer uses
the new secret from Key Vault.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from shared.response.actions._errors import permanent_errors
from shared.response.actions.base import ActionContext, ActionFailed, NotReversible, Outcome, Target
from shared.response.actions.notes import read_note, write_note

if TYPE_CHECKING:
    from shared.auth.secrets import SecretStore
    from shared.clients.graph import DirectoryApp, GraphClient, PasswordCredential

MARKER_PREFIX = "rotated by fraud-responder"
APP_KINDS = ("service_principal", "application")


def marker(ctx: ActionContext) -> str:
    """The displayName of the credential this alert's rotation adds."""
    return f"{MARKER_PREFIX} {ctx.alert.id}"


def secret_name(customer_tenant_id: str, app_id: str) -> str:
    """The Key Vault secret holding the new client secret: letters, digits and dashes, at most 127."""
    return re.sub(r"[^0-9A-Za-z-]", "-", f"rotated-{customer_tenant_id}-{app_id}")[:127]


@dataclass(frozen=True)
class _Objects:
    """The app's directory objects: ``holder`` gets the new secret; ``other`` only loses its old ones."""

    holder: DirectoryApp
    other: DirectoryApp | None

    @property
    def app_id(self) -> str:
        return self.holder.app_id

    def display(self) -> str:
        return self.holder.display_name or self.app_id


@dataclass(frozen=True)
class _State:
    ours: tuple[PasswordCredential, ...]
    kept: PasswordCredential | None
    """Our credential whose secret is known to be in Key Vault (the note says so)."""
    old: tuple[tuple[DirectoryApp, PasswordCredential], ...]

    @property
    def done(self) -> bool:
        return self.kept is not None and len(self.ours) == 1 and not self.old


class RotateCredentials:
    """Rotate implicated apps' client secrets (new one in Key Vault) and force implicated users' password change."""

    name: ClassVar[str] = "rotate_credentials"
    reversible: ClassVar[bool] = False

    def plan(self, ctx: ActionContext) -> list[Target]:
        tenant = ctx.alert.customer_tenant_id
        targets: list[Target] = []
        if ctx.params.get("applications", True):
            seen: set[str] = set()
            for sp in (ctx.investigation or {}).get("service_principals", []):
                if str(sp["id"]).lower() in seen:
                    continue
                seen.add(str(sp["id"]).lower())
                targets.append(Target("service_principal", str(sp["id"]), display=str(sp.get("display") or sp["id"]),
                                      tenant=tenant, details={
                                          "app_id": str(sp.get("app_id") or ""),
                                          "what": "add a new client secret (kept in Key Vault), remove every old one",
                                      }))
        if ctx.params.get("users", True):
            for user_id, display in dict(ctx.implicated().users).items():
                targets.append(Target("user", user_id, display=display or user_id, tenant=tenant,
                                      details={"what": "force a password change with MFA at next sign-in"}))
        return targets

    def verify(self, ctx: ActionContext, target: Target) -> bool:
        graph = ctx.clients.graph_customer(target.tenant)
        if target.kind == "user":
            return _user_forced(graph, target)
        objects = _resolve(graph, target)
        return _state(ctx, target, objects).done

    def execute(self, ctx: ActionContext, target: Target) -> Outcome:
        graph = ctx.clients.graph_customer(target.tenant)
        if target.kind == "user":
            return self._force_password_change(graph, target)
        if target.kind not in APP_KINDS:
            raise ActionFailed(f"rotate_credentials cannot act on a {target.kind}; expected a user or an application")
        objects = _resolve(graph, target)
        state = _state(ctx, target, objects)
        note = read_note(ctx.clients.store, self.name, ctx.alert, target) or {}
        if state.done:
            return Outcome(f"the client secret of {objects.display()} was already rotated (key "
                           f"{note.get('key_id')})", _data(objects, note, []), already_done=True)
        if state.kept is None:
            # Any marker credential here was added before a crash that came before its secret was
            # known to be in Key Vault: Graph never shows secretText again, so it is useless. Remove
            # it and add a fresh one.
            secrets = _secret_store(ctx)
            for stale in state.ours:
                _remove(graph, objects.holder, stale)
            note = self._add_and_store(ctx, graph, secrets, target, objects)
        removed = [_remove(graph, owner, credential) for owner, credential in state.old]
        summary = (f"rotated the client secret of {objects.display()}: new key {note['key_id']} (secret in Key Vault "
                   f"as {note['secret_name']}), removed {len(removed)} old secret(s)")
        return Outcome(summary, _data(objects, note, removed))

    def undo(self, ctx: ActionContext, target: Target, recorded: dict[str, Any]) -> Outcome:
        if target.kind == "user":
            raise NotReversible(f"a forced password change for {target.display} cannot be taken back once the user "
                                "may have changed the password; clear it in the Entra admin center if needed")
        raise NotReversible(f"the old client secrets of {target.display} cannot be restored (Graph never shows a "
                            f"secret again); the customer uses the new secret from Key Vault "
                            f"({recorded.get('secret_name') or 'rotated-<tenant>-<app id>'})")

    # -- steps ------------------------------------------------------------------------------------

    def _add_and_store(self, ctx: ActionContext, graph: GraphClient, secrets: SecretStore, target: Target,
                       objects: _Objects) -> dict[str, Any]:
        from shared.auth.secrets import SecretStoreError

        holder = objects.holder
        with permanent_errors(f"adding a client secret to {holder.kind} {holder.id}"):
            if holder.kind == "applications":
                credential = graph.add_application_password(holder.id, display_name=marker(ctx))
            else:
                credential = graph.add_service_principal_password(holder.id, display_name=marker(ctx))
        name = secret_name(ctx.alert.customer_tenant_id, objects.app_id)
        try:
            version = secrets.set(name, credential.secret_text or "",
                                  content_type=f"client secret; appId={objects.app_id}; keyId={credential.key_id}")
        except SecretStoreError as exc:
            # The secret exists nowhere else: take the credential away again (best effort; a retry
            # would remove it anyway) so no unknown secret stays valid.
            with contextlib.suppress(Exception):  # the original failure is the one to report
                _remove(graph, holder, credential)
            raise ActionFailed(f"storing the new client secret of {objects.display()} in Key Vault failed, so it was "
                               f"removed again and the old secrets were kept: {exc}") from None
        note = {"key_id": credential.key_id, "secret_name": name, "secret_version": version,
                "holder": holder.kind, "holder_id": holder.id}
        write_note(ctx.clients.store, self.name, ctx.alert, target, note)
        return note

    def _force_password_change(self, graph: GraphClient, target: Target) -> Outcome:
        data = {"user": target.id, "force_change_password_next_sign_in": True,
                "force_change_password_next_sign_in_with_mfa": True}
        if _user_forced(graph, target):
            return Outcome(f"{target.display} must already change the password (with MFA) at next sign-in", data,
                           already_done=True)
        with permanent_errors(f"forcing a password change for {target.display}"):
            graph.update_user(target.id, force_change_password_next_sign_in=True,
                              force_change_password_next_sign_in_with_mfa=True)
        return Outcome(f"{target.display} must change the password, after MFA, at next sign-in", data)


def _user_forced(graph: GraphClient, target: Target) -> bool:
    with permanent_errors(f"reading user {target.display}"):
        user = graph.get_user(target.id)
    return bool(user.force_change_password_next_sign_in_with_mfa and user.force_change_password_next_sign_in)


def _resolve(graph: GraphClient, target: Target) -> _Objects:
    """The service principal and its application registration (when it is in this tenant)."""
    from shared.http import NotFound

    with permanent_errors(f"looking up {target.kind} {target.id}"):
        if target.kind == "application":
            app = graph.get_application(target.id)
            try:
                return _Objects(holder=app, other=graph.get_service_principal(app_id=app.app_id))
            except NotFound:
                return _Objects(holder=app, other=None)
        try:
            sp = graph.get_service_principal(target.id)
        except NotFound:
            sp = graph.get_service_principal(app_id=target.id)  # older activity-log events name the app id
        try:
            return _Objects(holder=graph.get_application(app_id=sp.app_id), other=sp)
        except NotFound:
            return _Objects(holder=sp, other=None)  # registered in another tenant: only the SP is ours to change


def _state(ctx: ActionContext, target: Target, objects: _Objects) -> _State:
    note = read_note(ctx.clients.store, RotateCredentials.name, ctx.alert, target) or {}
    stored_key = str(note.get("key_id") or "").lower()
    mark = marker(ctx)
    ours = tuple(c for c in objects.holder.password_credentials if c.display_name == mark)
    kept = next((c for c in ours if stored_key and c.key_id.lower() == stored_key), None)
    old = [(objects.holder, c) for c in objects.holder.password_credentials if c.display_name != mark]
    if objects.other is not None:
        old += [(objects.other, c) for c in objects.other.password_credentials]
    if kept is not None:  # a second marker credential (an earlier attempt) is stale too
        old += [(objects.holder, c) for c in ours if c is not kept]
    return _State(ours=ours, kept=kept, old=tuple(old))


def _remove(graph: GraphClient, owner: DirectoryApp, credential: PasswordCredential) -> dict[str, str]:
    with permanent_errors(f"removing client secret {credential.key_id} from {owner.kind} {owner.id}"):
        if owner.kind == "applications":
            graph.remove_application_password(owner.id, credential.key_id)
        else:
            graph.remove_service_principal_password(owner.id, credential.key_id)
    return {"object": owner.kind, "object_id": owner.id, "key_id": credential.key_id,
            "display_name": credential.display_name or ""}


def _secret_store(ctx: ActionContext) -> SecretStore:
    """Key Vault, checked before anything is added: a secret with nowhere to go must not be created."""
    from shared.auth.secrets import KeyVaultNotConfigured

    try:
        return ctx.clients.secrets()
    except KeyVaultNotConfigured as exc:
        raise ActionFailed(f"cannot rotate client secrets without a Key Vault for the new one: {exc}") from None


def _data(objects: _Objects, note: dict[str, Any], removed: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "app_id": objects.app_id, "holder": objects.holder.kind, "holder_id": objects.holder.id,
        "added_key_id": note.get("key_id", ""), "secret_name": note.get("secret_name", ""),
        "secret_version": note.get("secret_version", ""),
        "removed_key_ids": [r["key_id"] for r in removed], "removed": removed,
    }


ACTION = RotateCredentials()
