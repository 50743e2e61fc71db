from __future__ import annotations

from eventyard.cli import main

main()
