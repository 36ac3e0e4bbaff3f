"""Which upstream URL serves a file this server offers, and whether it may be fetched: pure.

Only URLs of a listing this server parsed are ever fetched (never an open proxy), and only files
whose bytes can be verified against a hash the listing gives (issue 12 M7): a cached file is
served as immutable to every client, so bytes nobody can check would stay whatever upstream
sent once. ``cache_unverified_files`` lets an upstream that lists no hashes be used anyway.
"""

from __future__ import annotations

import structlog

from proxy.core.errors import ProjectNotFound, UpstreamRefused
from proxy.core.indexpage import IndexFile, IndexPage
from proxy.core.urls import METADATA_SUFFIX, PROVENANCE_SUFFIX, with_path_suffix
from proxy.upstream.downloads import FileSpec, expected_digest

log = structlog.get_logger(__name__)


def file_spec(page: IndexPage, filename: str, *, cache_unverified: bool = False) -> FileSpec:
    """What to fetch for ``filename`` of the upstream project ``page`` lists.

    Besides the listed files: ``<file>.metadata`` (PEP 658: upstream's when it lists a hash of
    it, else for a wheel extracted by this server from the verified wheel: ``metadata_of``) and
    ``<file>.provenance`` (PEP 740). ProjectNotFound when the listing has no such file;
    UpstreamRefused (rule ``cache_unverified_files``) for one listed without a usable hash.
    """
    if filename.endswith(METADATA_SUFFIX):
        listed = page.file(filename.removesuffix(METADATA_SUFFIX))
        if listed is not None and listed.core_metadata is not None and (
                expected_digest(listed.core_metadata) or cache_unverified):
            url = with_path_suffix(listed.url, METADATA_SUFFIX)  # on the path: the query stays (H3)
            return FileSpec(page.name, filename, url, dict(listed.core_metadata))
        if listed is not None and listed.filename.endswith(".whl"):  # made from the verified wheel
            wheel = verifiable(_listed_spec(page.name, listed, cache_unverified), cache_unverified)
            return FileSpec(page.name, filename, listed.url, metadata_of=wheel)
        if listed is not None and listed.core_metadata is not None:  # offered, nothing to verify it with
            verifiable(FileSpec(page.name, filename, listed.url), cache_unverified)
    elif filename.endswith(PROVENANCE_SUFFIX):
        # PEP 740 lists no hash of a provenance object: it is signed, and its signatures bind the
        # distribution's digest, which clients check. The file policy applies as to any file.
        listed = page.file(filename.removesuffix(PROVENANCE_SUFFIX))
        if listed is not None and listed.provenance is not None:
            return FileSpec(page.name, filename, listed.provenance)
    elif (listed := page.file(filename)) is not None:
        return verifiable(_listed_spec(page.name, listed, cache_unverified), cache_unverified)
    raise ProjectNotFound(f"No file {filename!r} in project {page.name!r}.", project=page.name)


def verifiable(spec: FileSpec, cache_unverified: bool) -> FileSpec:
    """``spec`` when a hash this server checks is listed for it, or ``cache_unverified`` allows
    it; else UpstreamRefused (logged)."""
    if expected_digest(spec.hashes) is None and not cache_unverified:
        log.warning("upstream_file_refused", project=spec.project, filename=spec.filename,
                    rule="cache_unverified_files")
        raise UpstreamRefused(
            f"upstream lists {spec.filename} without a hash this server can verify, so it is not fetched "
            "(upstream.cache_unverified_files = true fetches and caches such files)", "cache_unverified_files")
    return spec


def _listed_spec(name: str, listed: IndexFile, cache_unverified: bool) -> FileSpec:
    """A listed file; for a wheel whose metadata this server makes (``.metadata`` above), the
    copy made from byte ranges is checked against the verified wheel once it is downloaded."""
    own_metadata = listed.core_metadata is not None and (
        expected_digest(listed.core_metadata) is not None or cache_unverified)
    return FileSpec(name, listed.filename, listed.url, dict(listed.hashes), listed.size,
                    derive_metadata=listed.filename.endswith(".whl") and not own_metadata)
