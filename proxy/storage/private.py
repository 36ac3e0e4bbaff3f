"""Private projects on the local filesystem, plain and inspectable.

Layout under ``<data_dir>/private``::

    <project>/project.json            the project's index: files, digests, yank state, releases
    <project>/<filename>              the distribution, immutable once listed
    <project>/<filename>.metadata     its core metadata (PEP 658), the archive's own bytes
    .projects                         replaced whenever a project appears or goes, so readers notice
                                      (proxy.storage.private_names)

and beside it ``<data_dir>/private-quarantine/<project>/<filename>``: files found in a project's
directory but not in its index, moved there by ``check --repair``.

``project.json`` is written last, atomically: it is the commit. A crash leaves the old index or
the new one, and a file that is on disk but not in the index is never served; an exception
before the index is written removes what was placed, and only a crash can leave such a file
behind (``check`` reports it, ``check --repair`` moves it to the quarantine). All calls block;
the server runs them in its executor. Writers hold a per-project ``flock``, so the CLI and any
number of server processes can write at once.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from proxy.core.errors import CorruptStorage, FileExists, ProjectNotEmpty, ProjectNotFound, describe_corruption
from proxy.core.models import PrivateProject, ReleaseInfo, StoredFile
from proxy.core.names import check_safe_filename, normalize
from proxy.core.timestamps import utc_now
from proxy.storage.atomic import TEMP_PREFIX, fsync_dir, locked, move_into_place, write_atomic
from proxy.storage.private_names import ProjectNames

INDEX_NAME = "project.json"
QUARANTINE = "private-quarantine"


@dataclass(frozen=True, slots=True)
class Stamp:
    """Identity of an on-disk version of a file: changes on every atomic replace."""

    inode: int
    mtime_ns: int
    size: int

    @property
    def token(self) -> str:
        """The stamp as text, for naming things derived from that version of the file."""
        return f"{self.inode}-{self.mtime_ns}-{self.size}"


def stamp_of(path: Path | str) -> Stamp | None:
    """One stat: cheap enough to run on the event loop for every request (no thread hop)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return Stamp(st.st_ino, st.st_mtime_ns, st.st_size)


class PrivateStorage:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "private"
        self._root_text = str(self.root)
        self.temp_dir = data_dir / "tmp"
        self.locks_dir = data_dir / "locks"
        self.quarantine_root = data_dir / QUARANTINE
        self.names = ProjectNames(self.root, self.locks_dir, INDEX_NAME)

    def prepare(self) -> None:
        for directory in (self.root, self.temp_dir, self.locks_dir):
            directory.mkdir(parents=True, exist_ok=True)

    def project_dir(self, project: str) -> Path:
        return self.root / check_safe_filename(normalize(project))

    def file_path(self, project: str, filename: str) -> Path:
        return self.project_dir(project) / check_safe_filename(filename)

    def index_path(self, project: str) -> Path:
        return self.project_dir(project) / INDEX_NAME

    def projects_stamp(self) -> Stamp | None:
        return stamp_of(self.names.path)

    def index_stamp(self, project: str) -> Stamp | None:
        # Asked on every request: string paths, as pathlib's parsing costs more than the stat.
        name = check_safe_filename(normalize(project))
        return stamp_of(os.path.join(self._root_text, name, INDEX_NAME))

    def is_private(self, project: str) -> bool:
        """Whether ``project`` (any spelling) is a private project: one stat, cheap enough for
        the event loop. InvalidName for a name that cannot be a project directory."""
        return self.index_stamp(project) is not None

    def load(self, project: str) -> PrivateProject | None:
        """The project's index, None when the project is not private.

        Raises CorruptStorage, naming the file, when it is not an index this version can read
        (truncated, not UTF-8, not JSON, fields missing or of the wrong type).
        """
        path = self.index_path(project)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise TypeError(f"a JSON {type(data).__name__}, not an object")
            return PrivateProject.from_json(data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptStorage(str(path), str(path.relative_to(self.root.parent)), describe_corruption(exc),
                                 "restore it from a backup; `pypi-proxy check` lists every damaged index") from None

    def project_names(self) -> list[str]:
        """Display names of every private project, sorted by normalised name (one file read)."""
        return self.names.display_names()

    def check_names(self) -> None:
        """At start-up: rebuild the name list when it does not match the project directories."""
        self.names.check()

    def rebuild_names(self) -> dict[str, str]:
        """Read every project index for its display name (slow: only when the list is unusable)."""
        return self.names.rebuild()

    def new_temp_path(self) -> Path:
        return self.temp_dir / f"{TEMP_PREFIX}upload-{os.urandom(8).hex()}"

    def commit_file(
        self,
        staged: Path,
        stored: StoredFile,
        metadata: bytes,
        info: ReleaseInfo,
        display_name: str,
        project: str,
    ) -> bool:
        """Add an uploaded file. True if added, False if the identical file was already there.

        Raises FileExists when the filename is taken by different bytes (STANDARDS E4), or when
        the file duplicates a stored one under another filename: the same distribution (H1) or
        the same bytes. The check runs under the project's lock, so of concurrent uploads of one
        distribution, from any number of processes, exactly one is stored. Storage is left
        untouched on refusal. ``staged`` must already be fsynced; it is consumed only on success.
        """
        with self._locked(project):
            current = self.load(project)
            existing = current.duplicate_of(stored) if current else None
            if existing is not None:
                refuse_duplicate(existing, stored)
                return False
            directory = self.project_dir(project)
            directory.mkdir(parents=True, exist_ok=True)
            placed = [directory / f"{stored.filename}.metadata", directory / stored.filename]
            base = current or PrivateProject(name=project, display_name=display_name)
            try:
                write_atomic(placed[0], metadata)
                move_into_place(staged, placed[1])
                # E6: upload-time is the server's clock when the file becomes visible.
                self._write_index(base.with_file(replace(stored, upload_time=utc_now()), info))
                if current is None:  # a full disk here too must leave no project behind
                    self.names.add(project, display_name)
            except BaseException:
                # Nothing lists them (the filename was free): leave the project as it was; a new
                # one's index goes too (the project is not in the names list).
                for path in placed + ([self.index_path(project)] if current is None else []):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                if current is None:
                    with contextlib.suppress(OSError):
                        directory.rmdir()
                raise
            return True

    def update(self, project: str, change: Callable[[PrivateProject], PrivateProject]) -> PrivateProject:
        """Apply ``change`` to the project's index under its lock (yank, unyank, ...)."""
        with self._locked(project):
            current = self.load(project)
            if current is None:
                raise ProjectNotFound(f"No private project {project!r}.", project=project)
            updated = change(current)
            self._write_index(updated)
            return updated

    def remove_files(self, project: str, filenames: set[str]) -> PrivateProject:
        """Unlist files, then delete them. The name stays private even with no files left."""
        updated = self.update(project, lambda p: p.without_files(filenames))
        for filename in filenames:
            for path in (self.file_path(project, filename), self.file_path(project, f"{filename}.metadata")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return updated

    def quarantine_unlisted(self, project: str) -> list[tuple[Path, Path]]:
        """Move every file of the project's directory that its index does not list (what a crash
        in ``commit_file`` leaves; all of them when there is no index) to
        ``private-quarantine/<project>/``, under the project's lock so that no upload is half
        done meanwhile. A directory left empty without an index is removed. Returns
        ``(from, to)`` for each file moved; CorruptStorage when the index cannot be read."""
        moved = []
        with self._locked(project):
            current = self.load(project)
            listed = listed_files(current) if current is not None else set()
            directory = self.project_dir(project)
            for entry in sorted(os.scandir(directory), key=lambda e: e.name):
                if entry.name == INDEX_NAME or entry.name.startswith(TEMP_PREFIX) or entry.name in listed:
                    continue
                target = _free_path(self.quarantine_root / directory.name / entry.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                move_into_place(Path(entry.path), target)
                moved.append((Path(entry.path), target))
            if current is None:
                with contextlib.suppress(OSError):
                    directory.rmdir()
        return moved

    def release(self, project: str, with_files: bool = False) -> PrivateProject:
        """Make ``project`` public again: its index goes first (from then on the name is served from
        upstream), then its files; anything unlisted left in its directory goes to the quarantine.
        ProjectNotFound when it is not private, ProjectNotEmpty when it has files and not
        ``with_files``. Returns the index as it was."""
        with self._locked(project):
            current = self.load(project)
            if current is None:
                raise ProjectNotFound(f"No private project {project!r}.", project=project)
            if current.files and not with_files:
                raise ProjectNotEmpty(project, len(current.files))
            self.index_path(project).unlink()
            fsync_dir(self.project_dir(project))
            for filename in listed_files(current):
                with contextlib.suppress(FileNotFoundError):
                    self.file_path(project, filename).unlink()
        self.names.remove(project)
        self.quarantine_unlisted(project)
        return current

    def _write_index(self, project: PrivateProject) -> None:
        data = json.dumps(project.to_json(), indent=1, sort_keys=True).encode()
        write_atomic(self.index_path(project.name), data)

    def _locked(self, project: str) -> contextlib.AbstractContextManager[None]:
        return locked(self.locks_dir / f"{check_safe_filename(normalize(project))}.lock")


def listed_files(project: PrivateProject) -> set[str]:
    """Every file the index lists in the project's directory: distributions and their metadata."""
    names = {stored.filename for stored in project.files}
    return names | {f"{stored.filename}.metadata" for stored in project.files if stored.metadata_sha256}


def _free_path(path: Path) -> Path:
    """``path``, or ``path.1``, ``path.2``... when it is taken (an earlier quarantine)."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{number}")
    return candidate


def refuse_duplicate(existing: StoredFile, new: StoredFile) -> None:
    """Return when ``new`` is ``existing`` again (same filename, same bytes: E4's no-op);
    raise FileExists, saying how they clash, otherwise."""
    if existing.filename == new.filename:
        if existing.sha256 == new.sha256:
            return
        raise FileExists(new.filename)
    raise FileExists(new.filename, existing.filename, same_content=existing.identity != new.identity)
