"""``pypi-proxy migrate --to <config>``: copy this embedded install (its data directory's private
projects, users and tokens) into the shared backend a config file names (issue 14).

Files are verified on the way (the object store's put checks each one's sha256 and size against
the index, ``.metadata`` too), users and tokens keep their hashes as stored. Idempotent and
resumable: what the target holds identical is skipped, what it holds different is reported and
never overwritten, and a file stopped halfway is put again on the next run. Exit status 1 when
anything was not copied."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from proxy.config import Settings, load_settings
from proxy.core.errors import ConfigError, MigrationConflict, ObjectIntegrityError
from proxy.core.models import PrivateProject, ReleaseInfo
from proxy.core.names import normalize
from proxy.storage.auth import AuthStore
from proxy.storage.backends import Shared, opened, shared_mode
from proxy.storage.private import PrivateStorage
from proxy.storage.sql import imports
from proxy.storage.sql.migrate import check_schema


@dataclass
class Tally:
    """What one kind of record came to: ``copied``, ``present`` (identical in the target), and
    ``refused`` (a line each: a conflict, or bytes that failed their check)."""

    copied: int = 0
    present: int = 0
    refused: list[str] = field(default_factory=list)

    def line(self, kind: str) -> str:
        return f"{kind}: {self.copied} copied, {self.present} already there, {len(self.refused)} not copied"


def migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Copy the data directory of ``settings`` into the shared backend of ``args.to``."""
    if shared_mode(settings.storage):
        raise ConfigError("--config", "migrate copies an embedded install (a data directory); this config is "
                                      "already the shared mode's")
    target = load_settings(args.to, source="--to")
    if not shared_mode(target.storage):
        raise ConfigError("--to", f"{args.to} names no shared backend: set [storage] database and objects in it")
    with opened(target) as stores:
        shared = stores.shared
        assert shared is not None
        check_schema(shared.engine)  # SchemaMismatch: "run `pypi-proxy db upgrade`"
        shared.private.prepare()
        auth = AuthStore(settings.data_dir).export()
        users, tokens = Tally(), Tally()
        for name, record in sorted(auth["users"].items()):
            _count(users, f"user {name!r}", lambda: imports.import_user(shared.engine, name, record))
        for token_id, record in sorted(auth["tokens"].items()):
            _count(tokens, f"token {token_id}", lambda: imports.import_token(shared.engine, token_id, record))
        projects, files = _copy_projects(PrivateStorage(settings.data_dir), shared)
    for tally in (files, users, tokens):
        for line in tally.refused:
            print(f"NOT COPIED {line}")
    print(f"projects: {projects}")
    for kind, tally in (("files", files), ("users", users), ("tokens", tokens)):
        print(tally.line(kind))
    return 1 if files.refused or users.refused or tokens.refused else 0


def _count(tally: Tally, what: str, copy: Callable[[], bool]) -> None:
    try:
        copied = copy()
    except MigrationConflict as exc:
        tally.refused.append(str(exc))
        return
    except ObjectIntegrityError as exc:
        tally.refused.append(f"{what}: {exc}")
        return
    except FileNotFoundError as exc:
        tally.refused.append(f"{what}: missing from the data directory ({exc.filename})")
        return
    if copied:
        tally.copied += 1
    else:
        tally.present += 1


def _copy_projects(source: PrivateStorage, shared: Shared) -> tuple[int, Tally]:
    files = Tally()
    names = [normalize(display) for display in source.project_names()]
    for name in names:
        project = source.load(name)
        if project is not None:
            for stored in project.files:
                path = source.file_path(name, stored.filename)
                _count(files, f"file {name}/{stored.filename}",
                       lambda: imports.import_file(shared.private, path, stored, _metadata(path, stored.metadata_sha256),
                                                   _release(project, stored.version), name, project.display_name))
    return len(names), files


def _metadata(path: Path, digest: str | None) -> bytes:
    return path.with_name(f"{path.name}.metadata").read_bytes() if digest else b""


def _release(project: PrivateProject, version: str) -> ReleaseInfo:
    return project.release(version) or ReleaseInfo(version)
