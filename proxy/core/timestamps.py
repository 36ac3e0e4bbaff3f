"""Moments as the index formats write them: UTC, ISO 8601 with a ``Z`` (PEP 700 upload-time)."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def iso_z(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix and microseconds (PEP 700 upload-time)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    """An ISO 8601 moment, ``Z`` accepted for UTC (what ``iso_z`` writes); ValueError otherwise."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
