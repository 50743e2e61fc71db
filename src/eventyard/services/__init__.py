"""Use cases. The HTTP API, the CLI, the adapters and the tests all call these."""
