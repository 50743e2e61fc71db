"""The `eventyard` command line.

`root` holds the group; each module adds its commands to it when imported: `server` runs
and administers the server on its database, `remote` holds what the commands that talk to a
running server share (options, output, errors) through the Python client.
"""

from eventyard.cli import server
from eventyard.cli.root import main

__all__ = ["main", "server"]
