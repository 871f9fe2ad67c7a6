"""Alert intake: webhook verification, source polling, normalisation and sync into Table Storage."""
