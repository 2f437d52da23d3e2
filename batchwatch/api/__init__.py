"""The local HTTP API: routes (reads, actions), pydantic schemas, the bearer token, guards."""
