"""The admin HTTP API: operators' reads and decisions over HTTP, described by an OpenAPI document.

``routes`` names every operation (route, method, function) once; ``openapi`` builds the document
from it and from the read models' field lists, so the document cannot drift from what is served;
``api`` holds the handlers (plain Python: request in, status and JSON out). ``functions/admin.py``
is the thin Functions glue.

The routes live under ``/api/manage/``, not ``/api/admin/``: the Functions host refuses any function
route that starts with ``admin`` (or ``runtime``), whatever the route prefix, because ``/admin`` is
its own management API.
"""
