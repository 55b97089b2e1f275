"""The rooms behind service.py: pure core, database, upstream sources, the refresh, web plumbing
and the OpenAPI document. None of them imports service.py."""
