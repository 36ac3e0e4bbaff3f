"""Reading an upstream's PEP 691 JSON page: the document, its files and its project keys."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from yarl import URL

from proxy.core.errors import InvalidUpstreamResponse
from proxy.core.indexpage import IndexFile
from proxy.core.parse_fields import check_api_version, optional_url, project_status, url_list
from proxy.core.timestamps import parse_iso
from proxy.core.urls import resolve


def json_document(body: bytes) -> dict[str, Any]:
    """The PEP 691 document as a dict, its API version checked (PEP 629); InvalidUpstreamResponse
    when it is not JSON, not an object, or of an unknown major version."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidUpstreamResponse(f"upstream sent invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidUpstreamResponse("upstream's JSON page is not an object")
    meta = document.get("meta")
    check_api_version(meta.get("api-version") if isinstance(meta, dict) else None)
    return document


def json_files(document: dict[str, Any], page_url: str) -> tuple[list[IndexFile], list[str] | None]:
    """The page's readable files, URLs resolved against ``page_url``, and its PEP 700 ``versions``
    when it gives them as a list of strings (else None); InvalidUpstreamResponse without ``files``."""
    entries = document.get("files")
    if not isinstance(entries, list):
        raise InvalidUpstreamResponse("upstream's JSON page has no 'files' list")
    base = URL(page_url)
    files = [file for entry in entries if (file := _json_file(entry, base)) is not None]
    versions = document.get("versions")
    if isinstance(versions, list) and all(isinstance(v, str) for v in versions):
        return files, versions
    return files, None


def _json_file(entry: Any, base: URL) -> IndexFile | None:
    """One file of a PEP 691 page; None (skipped) when it has no usable filename or URL."""
    if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str) or not isinstance(entry.get("url"), str):
        return None
    try:
        url = str(resolve(base, entry["url"])[0])
    except ValueError:
        return None
    hashes = entry.get("hashes")
    yanked = entry.get("yanked", False)
    size = entry.get("size")
    requires_python = entry.get("requires-python")
    metadata = entry.get("core-metadata", entry.get("dist-info-metadata", False))  # PEP 714
    return IndexFile(
        filename=entry["filename"],
        url=url,
        hashes={k.lower(): v.lower() for k, v in hashes.items() if isinstance(v, str)} if isinstance(hashes, dict) else {},
        requires_python=requires_python if isinstance(requires_python, str) and requires_python else None,
        yanked_reason=(yanked if isinstance(yanked, str) else "") if yanked else None,
        core_metadata=_json_metadata(metadata),
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        upload_time=_time(entry.get("upload-time")),
        provenance=optional_url(base, entry.get("provenance")),
    )


def json_project_keys(document: dict[str, Any], base: URL) -> dict[str, Any]:
    """PEP 708 ``tracks`` / ``alternate-locations``, PEP 792 ``project-status``, ``_last-serial``."""
    status = document.get("project-status")
    meta = document.get("meta")
    serial = meta.get("_last-serial") if isinstance(meta, dict) else None
    return {
        "tracks": url_list(base, document.get("tracks")),
        "alternate_locations": url_list(base, document.get("alternate-locations")),
        **project_status(status.get("status") if isinstance(status, dict) else None,
                  status.get("reason") if isinstance(status, dict) else None),
        "last_serial": serial if isinstance(serial, int) and not isinstance(serial, bool) else None,
    }


def _json_metadata(value: Any) -> dict[str, str] | None:
    if isinstance(value, dict):
        return {k.lower(): v.lower() for k, v in value.items() if isinstance(v, str)}
    return {} if value is True else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None
