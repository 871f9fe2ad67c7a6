"""Typed clients for the Microsoft APIs the responder calls, all built on shared.http.MicrosoftClient.

Imported lazily by handlers: httpx stays out of the function app's cold start.
"""
