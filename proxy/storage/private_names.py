"""The list of private project names, ``<data_dir>/private/.projects``: every private project's
normalised and display name, as JSON, so that listing them is one file read.

It holds nothing the project indexes do not: when it is missing or unusable it is rebuilt from
them. It is replaced (atomically, under its own ``flock``) whenever a project appears or goes,
so its stamp tells readers that the list changed. All calls block.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from proxy.storage.atomic import locked, write_atomic

PROJECTS_STAMP = ".projects"
NAMES_FORMAT = 1
NAMES_LOCK = ".projects.lock"


class ProjectNames:
    """The name list of the private projects under ``root``, each a directory holding an index
    file called ``index_name``; writers lock ``locks_dir/.projects.lock``."""

    def __init__(self, root: Path, locks_dir: Path, index_name: str) -> None:
        self.root = root
        self.path = root / PROJECTS_STAMP
        self._lock = locks_dir / NAMES_LOCK
        self._index_name = index_name

    def display_names(self) -> list[str]:
        """Display names of every private project, sorted by normalised name (one file read)."""
        names = self._read()
        if names is None:
            names = self.rebuild() if self.root.exists() else {}
        return [names[key] for key in sorted(names)]

    def check(self) -> None:
        """At start-up: rebuild the name list when it does not match the project directories
        (written by an older version, or a crash came between a new index and the list)."""
        names = self._read()
        if names is None or set(names) != self._project_dirs():
            self.rebuild()

    def rebuild(self) -> dict[str, str]:
        """Read every project index for its display name (slow: only when the list is unusable)."""
        with locked(self._lock):
            names = self._scan()
            self._write(names)
        return names

    def add(self, project: str, display_name: str) -> None:
        """Record a new project (normalised name, display name)."""
        with locked(self._lock):
            names = self._read()
            if names is None:  # unusable: rebuild it (the lock is held)
                names = self._scan()
            names[project] = display_name
            self._write(names)

    def remove(self, project: str) -> None:
        """Drop a project (normalised name) that is no longer private."""
        with locked(self._lock):
            names = self._read()
            if names is None:
                names = self._scan()
            names.pop(project, None)
            self._write(names)

    def _scan(self) -> dict[str, str]:
        names = {}
        for name in self._project_dirs():
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
                names[name] = json.loads((self.root / name / self._index_name).read_bytes())["display_name"]
        return names

    def _project_dirs(self) -> set[str]:
        if not self.root.exists():
            return set()
        return {entry.name for entry in os.scandir(self.root)
                if entry.is_dir() and os.path.exists(os.path.join(entry.path, self._index_name))}

    def _read(self) -> dict[str, str] | None:
        """The list of names, or None when it is missing or unusable (then it is rebuilt from
        the indexes: it holds nothing they do not)."""
        try:
            data = json.loads(self.path.read_bytes())
        except (FileNotFoundError, ValueError):  # ValueError: not JSON, or not UTF-8
            return None
        if not isinstance(data, dict) or data.get("format") != NAMES_FORMAT:
            return None
        names = data.get("names")
        if not isinstance(names, dict) or not all(
                isinstance(key, str) and isinstance(value, str) for key, value in names.items()):
            return None
        return names

    def _write(self, names: dict[str, str]) -> None:
        body = json.dumps({"format": NAMES_FORMAT, "names": names}, sort_keys=True).encode()
        write_atomic(self.path, body)
