"""Helpers shared by the test suites (running the real service, reading metrics)."""
