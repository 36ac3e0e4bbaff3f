"""Files of a running service: the workers' metric files under ``<data_dir>/run``, and the probe
that tells whether the data directory still takes writes."""

from __future__ import annotations

import os
from pathlib import Path

from proxy.storage.atomic import TEMP_PREFIX

METRICS_DIR = "prometheus"
# Per-worker JSON snapshots of the counters, as versions before prometheus_client wrote them.
OLD_SNAPSHOTS = "metrics-*.json"


def run_dir(data_dir: Path) -> Path:
    return data_dir / "run"


def metrics_dir(data_dir: Path) -> Path:
    """Where every worker's prometheus_client writes its values (``PROMETHEUS_MULTIPROC_DIR``)."""
    return run_dir(data_dir) / METRICS_DIR


def clear_metrics(data_dir: Path) -> Path:
    """Forget the counters of an earlier run of the service (the supervisor calls this at start,
    before any worker): an empty ``metrics_dir``, which is returned. Raises OSError."""
    directory = metrics_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    for path in [*directory.glob("*.db"), *run_dir(data_dir).glob(OLD_SNAPSHOTS)]:
        path.unlink(missing_ok=True)
    return directory


class DataDirProbe:
    """Whether the data directory takes writes now (for /-/health and the status page)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def writable(self) -> str | None:
        """Write, fsync and remove a small file: None when that works, else the error, as
        ``"FileNotFoundError: No such file or directory"``. Blocking: call it off the loop."""
        probe = self.data_dir / f"{TEMP_PREFIX}health-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            with open(probe, "xb") as handle:
                handle.write(b"ok")
                handle.flush()
                os.fsync(handle.fileno())
            probe.unlink()
        except OSError as exc:
            return f"{type(exc).__name__}: {exc.strerror or exc}"
        return None
