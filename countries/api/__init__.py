"""The HTTP API by resource: its Structs (`structs`) and one module of handlers per resource
(`countries`, `rates`, `users`, `operations`), joined by the route table in service.py."""
