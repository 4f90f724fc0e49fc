"""Frontends: thin adapters from a platform's events to ``core.app.Imagine`` calls."""
