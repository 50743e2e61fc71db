"""The `eventyard` command line.

`root` holds the group; each module adds its commands to it when imported: `server` runs
and administers the server on its database; `manage` (send, tail, triggers, keys,
consumers, events, replay) and `transfer` (import, export) talk to a running server through
the Python client (`admin` holds triggers, keys and consumers), with what they share in
`remote`.
"""

from eventyard.cli import admin, backup, manage, server, transfer
from eventyard.cli.root import main

__all__ = ["admin", "backup", "main", "manage", "server", "transfer"]
