"""``pypi-proxy check`` of the shared backend (issue 14): every blob the database lists is in the
object store with its size (``--deep``: and its sha256, by reading it back); blobs no row lists
are reported as garbage (``--repair`` deletes those older than the grace a commit in progress
needs). The database is the index: a listed blob that is missing or damaged is only reported."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from proxy.config import Settings
from proxy.storage.backends import opened
from proxy.storage.objects import BLOBS, ObjectInfo, ObjectStore, blob_key
from proxy.storage.sql.imports import blob_listing
from proxy.storage.sql.migrate import check_schema


@dataclass
class SharedReport:
    """``problems``: (what, message) of listed blobs; ``garbage``: unlisted blobs; ``swept``:
    how many of those ``--repair`` deleted."""

    listed: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    garbage: list[ObjectInfo] = field(default_factory=list)
    swept: int = 0


def check_shared(settings: Settings, deep: bool = False, repair: bool = False) -> SharedReport:
    """Check the shared backend ``settings`` name (see the module's docstring). SchemaMismatch,
    DatabaseUnavailable or ObjectStoreUnavailable when they cannot be asked."""
    with opened(settings) as stores:
        assert stores.shared is not None
        check_schema(stores.shared.engine)
        listing = blob_listing(stores.shared.engine)
        return asyncio.run(_check_objects(stores.shared.objects, listing, deep, repair))


async def _check_objects(objects: ObjectStore, listing: list[tuple[str, str, int | None, str]], deep: bool,
                         repair: bool) -> SharedReport:
    report = SharedReport(listed=len(listing))
    stored = {info.key: info async for info in objects.list(BLOBS.rstrip("/"))}
    referenced = set()
    for project, filename, size, sha256 in listing:
        key = blob_key(sha256)
        referenced.add(key)
        what = f"{project}/{filename} ({key})"
        info = stored.get(key)
        if info is None:
            report.problems.append((what, "listed in the database but missing from the object store"))
        elif size is not None and info.size != size:
            report.problems.append((what, f"size {info.size}, the database says {size}"))
        elif deep and await _sha256(objects, key) != sha256:
            report.problems.append((what, "sha256 does not match the database"))
    report.garbage = sorted((info for key, info in stored.items() if key not in referenced), key=lambda i: i.key)
    if repair:
        report.swept = await objects.sweep(referenced)
    return report


async def _sha256(objects: ObjectStore, key: str) -> str:
    digest = hashlib.sha256()
    async for chunk in await objects.open(key):
        digest.update(chunk)
    return digest.hexdigest()


def print_report(report: SharedReport, store: str, deep: bool) -> int:
    """The report on stdout; the exit status (1 when a listed blob has a problem)."""
    for what, message in report.problems:
        print(f"PROBLEM {what}: {message}")
    for info in report.garbage:
        print(f"garbage {info.key}: {info.size} bytes, no row lists it (written {info.last_modified:%Y-%m-%d %H:%M})")
    if report.swept:
        print(f"deleted {report.swept} unlisted blob(s) older than the grace period")
    print(f"checked {report.listed} listed blobs in {store}{' (sha256 re-read)' if deep else ''}: "
          f"{len(report.problems)} problems, {len(report.garbage)} unlisted blobs (garbage)")
    return 1 if report.problems else 0
