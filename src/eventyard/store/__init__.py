"""Storage: the only code that knows SQL.

`Store` (in `base.py`) owns the connections of one process: one writer connection behind a
group-commit thread, and a few reader connections. The query modules (`projects`, `keys`,
`triggers`, `events`) are plain functions over a `Db`; services compose them into one
write or read so that a use case is one database transaction.
"""

from eventyard.store.base import Store, open_store

__all__ = ["Store", "open_store"]
