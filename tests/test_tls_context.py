"""One TLS context per CA bundle: detection makes one ARM client per customer tenant, and each client
loading the trust store again made a run over 1,000 subscriptions take 5.6 times the memory of one
over 100 (about 0.7 MB a client)."""

from __future__ import annotations

import os
from pathlib import Path

from shared.http import ssl_context


def test_clients_share_one_context_per_bundle(tmp_path: Path) -> None:
    import certifi

    bundle = tmp_path / "ca.pem"
    bundle.write_text(Path(certifi.where()).read_text(encoding="utf-8"), encoding="utf-8")
    assert ssl_context(bundle) is ssl_context(str(bundle))
    assert ssl_context(None) is ssl_context(None)


def test_a_replaced_bundle_is_read_again(tmp_path: Path) -> None:
    import certifi

    bundle = tmp_path / "ca.pem"
    text = Path(certifi.where()).read_text(encoding="utf-8")
    bundle.write_text(text, encoding="utf-8")
    first = ssl_context(bundle)
    bundle.write_text(text + "\n", encoding="utf-8")  # a new sandbox wrote its CA at the same path
    os.utime(bundle, ns=(1, 1))
    assert ssl_context(bundle) is not first
