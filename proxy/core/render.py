"""Render index pages: one model, PEP 503 HTML and PEP 691 JSON (PyPI's JSON API: proxy.core.jsonapi)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from html import escape
from typing import Any
from urllib.parse import quote

from proxy.core.indexpage import IndexFile, IndexPage
from proxy.core.models import PrivateProject, version_key
from proxy.core.names import normalize
from proxy.core.timestamps import iso_z
from proxy.core.urls import PROVENANCE_SUFFIX, with_path_suffix

# The highest simple-API version whose keys this server serves (STANDARDS D1): 1.1 PEP 700
# (versions, size, upload-time), 1.2 PEP 708 (tracks, alternate-locations), 1.3 PEP 740
# (provenance), 1.4 PEP 792 (project-status). A page claims it only when it fulfils it: 1.1 makes
# ``size`` mandatory, so a page with a file of unknown size (HTML-only upstreams) says 1.0.
API_VERSION = "1.4"
API_VERSION_WITHOUT_SIZES = "1.0"
FILES_PREFIX = "files"  # files live at /pypi/files/<project>/<filename>


def _hash_attr(hashes: dict[str, str]) -> str:
    """``sha256=<hex>`` (PEP 503 fragment, PEP 658 attribute), or ``true`` when no hash is known."""
    if not hashes:
        return "true"
    name = "sha256" if "sha256" in hashes else next(iter(hashes))
    return f"{name}={hashes[name]}"


def file_path(project: str, filename: str) -> str:
    """Path of a file below the repository root ``/pypi/``; stable for private and cached files."""
    return f"{FILES_PREFIX}/{quote(project)}/{quote(filename)}"


def private_index_page(project: PrivateProject) -> IndexPage:
    """The simple page of a private project; links are relative to ``/pypi/simple/<name>/``."""
    files = tuple(
        IndexFile(
            filename=f.filename,
            url="../../" + file_path(project.name, f.filename),
            hashes={"sha256": f.sha256},
            requires_python=f.requires_python,
            yanked_reason=f.yanked_reason,
            core_metadata={"sha256": f.metadata_sha256} if f.metadata_sha256 else None,
            size=f.size,
            upload_time=f.upload_time,
        )
        for f in sorted(project.files, key=lambda f: (version_key(f.version), f.filename))
    )
    return IndexPage(name=project.name, files=files, versions=tuple(project.versions()), last_serial=project.serial)


def api_version(page: IndexPage) -> str:
    """The simple-API version ``page`` fulfils: the highest implemented one, unless a file has no
    size, which 1.1 and later require (STANDARDS H4)."""
    return API_VERSION if all(f.size is not None for f in page.files) else API_VERSION_WITHOUT_SIZES


def proxied_index_page(page: IndexPage) -> IndexPage:
    """An upstream page with every file link pointing at this proxy (files are fetched through it).

    Each wheel offers its core metadata (PEP 658) even when upstream has none, as PyPI does: this
    server extracts it from the wheel (``true``, without a hash, where upstream listed none). A
    provenance object (PEP 740) is offered at ``<file URL>.provenance`` on this server.
    """
    files = tuple(
        dataclasses.replace(
            f,
            url=(url := "../../" + file_path(page.name, f.filename)),
            core_metadata={} if f.core_metadata is None and f.filename.endswith(".whl") else f.core_metadata,
            provenance=with_path_suffix(url, PROVENANCE_SUFFIX) if f.provenance else None,
        )
        for f in page.files
    )
    return dataclasses.replace(page, files=files)


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _json_file(file: IndexFile) -> dict[str, Any]:
    # PEP 691: a dict of hashes, true when offered without one, false when absent.
    core_metadata: dict[str, str] | bool = (
        False if file.core_metadata is None else file.core_metadata or True
    )
    data: dict[str, Any] = {
        "filename": file.filename,
        "url": file.url,
        "hashes": file.hashes,
        "requires-python": file.requires_python,
        "core-metadata": core_metadata,
        "dist-info-metadata": core_metadata,  # PEP 714: the old key, for older clients
        "yanked": file.yanked_reason or True if file.yanked else False,
    }
    if file.size is not None:
        data["size"] = file.size
    if file.upload_time is not None:
        data["upload-time"] = iso_z(file.upload_time)
    if file.provenance is not None:
        data["provenance"] = file.provenance
    return data


def project_json(page: IndexPage) -> bytes:
    """PEP 691 project page, with the PEP 700, 708, 740 and 792 keys the page has."""
    meta: dict[str, Any] = {"api-version": api_version(page)}
    if page.last_serial is not None:
        meta["_last-serial"] = page.last_serial
    document: dict[str, Any] = {
        "meta": meta,
        "name": page.name,
        "files": [_json_file(f) for f in page.files],
        "versions": list(page.versions),
    }
    if page.tracks:
        document["tracks"] = list(page.tracks)
    if page.alternate_locations:
        document["alternate-locations"] = list(page.alternate_locations)
    if page.status is not None:
        document["project-status"] = {"status": page.status, "reason": page.status_reason}
    return _json_bytes(document)


# Simple pages are built by hand rather than with a template: for a project of 3,000 versions
# this is several times faster, and these pages are the hot path of every install.
def _head(version: str) -> str:
    return ('<!DOCTYPE html>\n<html>\n  <head>\n'
            f'    <meta name="pypi:repository-version" content="{version}">\n')


def _project_meta(page: IndexPage) -> str:
    """PEP 708 and PEP 792 ``<meta>`` tags (repeated for each URL)."""
    tags = [("pypi:tracks", url) for url in page.tracks]
    tags += [("pypi:alternate-locations", url) for url in page.alternate_locations]
    if page.status is not None:
        tags.append(("pypi:project-status", page.status))
        if page.status_reason:
            tags.append(("pypi:project-status-reason", page.status_reason))
    return "".join(f'    <meta name="{name}" content="{escape(value)}">\n' for name, value in tags)


def _anchor(file: IndexFile) -> str:
    href = file.url + ("#" + _hash_attr(file.hashes) if file.hashes else "")
    attributes = ""
    if file.requires_python:
        attributes += f' data-requires-python="{escape(file.requires_python)}"'  # B4: &gt;=3.8
    if file.yanked:
        attributes += f' data-yanked="{escape(file.yanked_reason or "")}"'
    if file.core_metadata is not None:
        meta = escape(_hash_attr(file.core_metadata))
        attributes += f' data-core-metadata="{meta}" data-dist-info-metadata="{meta}"'
    if file.provenance is not None:
        attributes += f' data-provenance="{escape(file.provenance)}"'  # PEP 740
    return f'\n    <a href="{escape(href)}"{attributes}>{escape(file.filename)}</a><br>'


def project_html(page: IndexPage) -> bytes:
    """PEP 503 project page with PEP 592/629/658/708/714/740/792 attributes and tags."""
    name = escape(page.name)
    parts = [_head(api_version(page)), _project_meta(page),
             f"    <title>Links for {name}</title>\n  </head>\n  <body>\n    <h1>Links for {name}</h1>"]
    parts += [_anchor(file) for file in page.files]
    parts.append("\n  </body>\n</html>\n")
    return "".join(parts).encode()


def root_json(names: Iterable[str]) -> bytes:
    return _json_bytes({
        "meta": {"api-version": API_VERSION},
        "projects": [{"name": name} for name in names],
    })


def root_html(names: Iterable[str]) -> bytes:
    parts = [_head(API_VERSION), "    <title>Simple index</title>\n  </head>\n  <body>"]
    parts += [f'\n    <a href="{escape(normalize(name))}/">{escape(name)}</a><br>' for name in names]
    parts.append("\n  </body>\n</html>\n")
    return "".join(parts).encode()
