"""Parsed tables built from the raw store: issues, pull requests, labels and release notes."""
