"""Fixtures for the vendor adapter tests: real fake vendor servers on 127.0.0.1."""

from __future__ import annotations
