"""What every scenario needs: the systems, the tree, the load tool, and where results go."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit.load import Loader
from benchkit.plan import Scale
from benchkit.procs import RssSampler
from benchkit.systems import System
from benchkit.tree import Tree

MIB = 1 << 20
HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
# What pip sends (PEP 691 negotiation): JSON preferred, HTML accepted.
PIP_ACCEPT = {"Accept": "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
                        "text/html; q=0.01"}


@dataclass
class Results:
    """Samples per table, system and metric, one per run; medians on demand."""

    samples: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, table: str, system: str, row: dict[str, Any]) -> None:
        self.samples.setdefault(table, {}).setdefault(system, []).append(row)

    def fail(self, table: str, system: str, message: str) -> None:
        self.errors.setdefault(table, {})[system] = message

    def median(self, table: str, system: str) -> dict[str, Any]:
        rows = self.samples.get(table, {}).get(system, [])
        merged: dict[str, Any] = {}
        for key in dict.fromkeys(k for row in rows for k in row):
            values = [row[key] for row in rows if key in row and row[key] is not None]
            if not values:
                merged[key] = None
            elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                merged[key] = statistics.median(values)
            else:
                merged[key] = Counter(map(str, values)).most_common(1)[0][0]
        return merged


@dataclass
class Context:
    scale: Scale
    tree: Tree
    loader: Loader
    reference: System  # nginx, or the Python stand-in: the upstream of every other system
    systems: list[System]  # the reference first, then the proxy, then the peers
    files_log: Path
    work: Path
    workers: int | None = None  # of the proxy, when it has --workers
    results: Results = field(default_factory=Results)

    def system(self, name: str) -> System | None:
        return next((s for s in self.systems if s.name == name), None)

    @contextmanager
    def measuring(self, table: str, system: System, row: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Sample ``system``'s RSS while the block fills ``row``; record it, or the error."""
        sampler = RssSampler({system.name: system.server.pid})
        try:
            with sampler:
                yield row
        except Exception as error:  # noqa: BLE001 - one system failing must not stop the others
            self.results.fail(table, system.name, f"{type(error).__name__}: {error}")
            print(f"    {system.name}: FAILED {type(error).__name__}: {error}", flush=True)
            return
        row.update(sampler.figures(system.name))
        self.results.add(table, system.name, row)
