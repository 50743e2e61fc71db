"""Delivery: the worker that claims due webhook transactions, sends them and records the result."""
