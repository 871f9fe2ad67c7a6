"""Table Storage and queue access (Azurite locally, identity-based in Azure)."""
