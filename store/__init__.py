"""Storage: the server's DuckDB database (workspaces, tokens, nodes, incidents, channels) and,
later, the Parquet lake and the analysts' catalog."""

from .db import Connection, Store, iso_utc, transaction, utcnow

__all__ = ["Connection", "Store", "iso_utc", "transaction", "utcnow"]
