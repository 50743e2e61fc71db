"""Commands that manage a running server over its API (to be written)."""
