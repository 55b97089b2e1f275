"""The rooms behind service.py: pure core, database, upstream sources, the refresh, web plumbing
and the OpenAPI document. None of them imports service.py."""

# the one version number: GET / and /openapi.json say it
VERSION = "1.1.0"
