"""Health names the real cause of a Key Vault failure: an untrusted TLS certificate is not a missing role.

Against the running sandbox (its Entra ID and Key Vault stand-ins): the app is given a CA bundle
that does not sign the sandbox's certificates, as happens when a second `make run` replaced the
sandbox CA under a running stack, or the stand-in is not listening at all.
"""

from __future__ import annotations

from pathlib import Path

from devhost.azurite import Azurite, free_port
from sandbox.core import Sandbox
from sandbox.tls import make_ca
from shared.health import build_report
from shared.settings import load_settings
from tests.conftest import settings_env


def test_untrusted_tls_certificate_is_named_not_a_missing_role(azurite: Azurite, fresh_sandbox: Sandbox,
                                                               tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(make_ca("some other CA").cert_pem())
    report = build_report(load_settings(settings_env(azurite, **{**fresh_sandbox.app_settings(),
                                                               "TRUSTED_CA_BUNDLE": str(other_ca)})))
    detail = report.parts["key_vault"].detail
    assert not report.parts["key_vault"].ok
    assert "role" not in detail and "not allowed" not in detail, detail
    assert "TLS" in detail and "TRUSTED_CA_BUNDLE" in detail, detail


def test_unreachable_entra_or_vault_is_named_not_a_missing_role(azurite: Azurite, fresh_sandbox: Sandbox) -> None:
    closed = f"https://127.0.0.1:{free_port()}"
    report = build_report(load_settings(settings_env(azurite, **{**fresh_sandbox.app_settings(),
                                                               "ENTRA_AUTHORITY_HOST": closed})))
    detail = report.parts["key_vault"].detail
    assert not report.parts["key_vault"].ok
    assert "role" not in detail and "not allowed" not in detail, detail
    assert "cannot connect" in detail and closed.split("//")[1] in detail, detail
