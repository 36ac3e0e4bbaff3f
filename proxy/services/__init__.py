"""Orchestration over storage: the index (cached, rendered pages) and uploads."""
