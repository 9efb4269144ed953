"""Helpers shared by the test suites (fixtures on disk, …)."""
