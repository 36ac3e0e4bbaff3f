"""What every backend of the private index offers, as protocols: the filesystem stores of the
embedded default (``proxy.storage.private``, ``proxy.storage.auth``) and the shared mode's SQL
stores (``proxy.storage.sql``) implement them alike, so the app, the CLI and uploads do not care
which one they hold (``proxy.storage.backends`` picks one from the settings)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from proxy.core.identity import Identity
from proxy.core.models import PrivateProject, ReleaseInfo, StoredFile


class PrivateStore(Protocol):
    """Private projects: their metadata and files. Every method blocks (disk, database or object
    store I/O) unless it says otherwise: the server calls them in its executor."""

    @property
    def temp_dir(self) -> Path:
        """Where uploads are staged, on this host's disk."""
        ...

    def prepare(self) -> None:
        """Create what the store needs before its first use."""

    def new_temp_path(self) -> Path:
        """A new path in ``temp_dir`` to stage an upload at."""
        ...

    def load(self, project: str) -> PrivateProject | None:
        """The project (any spelling), None when it is not private."""
        ...

    def is_private(self, project: str) -> bool:
        """Whether ``project`` (any spelling) is a private project."""
        ...

    def project_names(self) -> list[str]:
        """Display names of every private project, sorted by normalised name."""
        ...

    def commit_file(self, staged: Path, stored: StoredFile, metadata: bytes, info: ReleaseInfo,
                    display_name: str, project: str) -> bool:
        """Add an uploaded file: True if added, False if the identical file was there; FileExists
        when it clashes with a stored one (see ``PrivateStorage.commit_file``)."""
        ...

    def update(self, project: str, change: Callable[[PrivateProject], PrivateProject]) -> PrivateProject:
        """Apply ``change`` under the project's lock; ProjectNotFound when it is not private."""
        ...

    def remove_files(self, project: str, filenames: set[str]) -> PrivateProject:
        """Unlist files, then delete their bytes."""
        ...

    def release(self, project: str, with_files: bool = False) -> PrivateProject:
        """Make ``project`` public again (ProjectNotFound, ProjectNotEmpty); the project as it was."""
        ...


class Authenticator(Protocol):
    """Users and API tokens (salted scrypt hashes). Every method blocks."""

    def authenticate(self, username: str, password: str) -> Identity:
        """The identity of basic-auth credentials (a password, or ``__token__`` and a token), or
        Unauthenticated."""
        ...

    def add_user(self, name: str, password: str, projects: Sequence[str] | None = None) -> None: ...

    def remove_user(self, name: str) -> int: ...

    def users(self) -> list[dict[str, Any]]: ...

    def create_token(self, user: str, projects: Sequence[str] | None = None,
                     description: str = "") -> tuple[str, str]: ...

    def revoke_token(self, token_id: str) -> None: ...

    def tokens(self, user: str | None = None) -> list[dict[str, Any]]: ...
