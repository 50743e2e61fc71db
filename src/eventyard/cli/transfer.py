"""eventyard import and export (to be written)."""
