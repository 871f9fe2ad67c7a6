"""Blueprints: thin glue between Functions triggers and the domain code in ``shared``."""
