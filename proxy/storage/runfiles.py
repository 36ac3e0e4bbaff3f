"""Files of a running service under ``<data_dir>/run``: the workers' metric snapshots."""

from __future__ import annotations

import os
from pathlib import Path

SNAPSHOT_PATTERN = "metrics-*.json"


def run_dir(data_dir: Path) -> Path:
    return data_dir / "run"


def snapshot_path(data_dir: Path, pid: int | None = None) -> Path:
    return run_dir(data_dir) / f"metrics-{pid if pid is not None else os.getpid()}.json"


def clear_snapshots(data_dir: Path) -> None:
    """Forget the counters of an earlier run of the service (the supervisor calls this at start)."""
    for path in run_dir(data_dir).glob(SNAPSHOT_PATTERN):
        path.unlink(missing_ok=True)
