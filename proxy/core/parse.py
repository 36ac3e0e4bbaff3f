"""Parse upstream simple-API responses (PEP 691 JSON, PEP 503 HTML) into the one page model."""

from __future__ import annotations

import json
import re
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename
from yarl import URL

from proxy.core.errors import InvalidName, InvalidUpstreamResponse
from proxy.core.models import IndexFile, IndexPage, parse_iso, version_key
from proxy.core.names import check_safe_filename, normalize
from proxy.core.urls import resolve

JSON_TYPES = ("application/vnd.pypi.simple.v1+json", "application/json")
_HASH = re.compile(r"^([a-z0-9_]+)=([0-9a-f]+)$", re.IGNORECASE)
_LEGACY_SDIST = re.compile(r"^(?P<stem>.+?)(\.tar\.gz|\.tar\.bz2|\.tar\.xz|\.tgz|\.zip|\.tar)$", re.IGNORECASE)


def _is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in JSON_TYPES


def _check_api_version(version: Any) -> None:
    """PEP 629: a client must refuse an unknown major version (a missing one means 1.0)."""
    if version is None:
        return
    major = str(version).split(".", 1)[0]
    if major != "1":
        raise InvalidUpstreamResponse(f"upstream speaks simple API version {version}, only 1.x is understood")


def parse_project_page(body: bytes, content_type: str, page_url: str, name: str) -> IndexPage:
    """Upstream's project page as the model; file URLs made absolute against ``page_url`` (G1).

    Everything the page says survives: PEP 700 sizes and upload times, PEP 708 ``tracks`` and
    ``alternate-locations``, PEP 740 provenance URLs, PEP 792 project status, ``_last-serial``.
    An entry that cannot be read (no filename, a URL yarl cannot parse, another scheme than
    http(s)) is skipped; a page that is not a simple-API page at all is InvalidUpstreamResponse.
    """
    if _is_json(content_type):
        document = _json_document(body)
        files, versions = _json_files(document, page_url)
        extras = _json_project_keys(document, URL(page_url))
    else:
        files, versions, extras = _html_page(body, page_url)
    unique: dict[str, IndexFile] = {}
    for file in files:
        try:
            check_safe_filename(file.filename)
        except InvalidName:
            continue
        unique.setdefault(file.filename, file)
    normalised = normalize(name)
    if versions is None:
        versions = [v for f in unique.values() if (v := version_from_filename(f.filename, normalised))]
    ordered = tuple(sorted(set(versions), key=version_key))
    return IndexPage(name=normalised, files=tuple(unique.values()), versions=ordered, **extras)


def parse_project_list(body: bytes, content_type: str) -> list[str]:
    """Upstream's root page: the project names it lists, as spelled there."""
    if _is_json(content_type):
        document = _json_document(body)
        projects = document.get("projects")
        if not isinstance(projects, list):
            raise InvalidUpstreamResponse("upstream's project list has no 'projects' list")
        return [p["name"] for p in projects if isinstance(p, dict) and isinstance(p.get("name"), str) and p["name"]]
    parser = _AnchorParser()
    parser.feed(_decode(body))
    parser.close()
    return [text for _, text in parser.anchors if text]


def version_from_filename(filename: str, project: str) -> str | None:
    """The version a wheel or sdist filename of ``project`` names, or None when it cannot be told."""
    try:
        if filename.endswith(".whl"):
            name, version, *_ = parse_wheel_filename(filename)
            return str(version) if name == project else None
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            if name == project:
                return str(version)
    except (InvalidWheelFilename, InvalidSdistFilename):
        pass
    # Legacy sdists ("Foo_Bar-1.0.zip", "foo-bar-1.0.tar.gz"): strip the name, keep the rest.
    match = _LEGACY_SDIST.match(filename)
    if not match:
        return None
    stem = match.group("stem")
    for cut in range(len(stem) - 1, 0, -1):
        if stem[cut] == "-" and normalize(stem[:cut]) == project:
            return stem[cut + 1:] or None
    return None


# JSON (PEP 691)

PROJECT_STATUSES = ("active", "archived", "quarantined", "deprecated")  # PEP 792


def _json_document(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidUpstreamResponse(f"upstream sent invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidUpstreamResponse("upstream's JSON page is not an object")
    meta = document.get("meta")
    _check_api_version(meta.get("api-version") if isinstance(meta, dict) else None)
    return document


def _json_files(document: dict[str, Any], page_url: str) -> tuple[list[IndexFile], list[str] | None]:
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
        provenance=_optional_url(base, entry.get("provenance")),
    )


def _json_project_keys(document: dict[str, Any], base: URL) -> dict[str, Any]:
    """PEP 708 ``tracks`` / ``alternate-locations``, PEP 792 ``project-status``, ``_last-serial``."""
    status = document.get("project-status")
    meta = document.get("meta")
    serial = meta.get("_last-serial") if isinstance(meta, dict) else None
    return {
        "tracks": _url_list(base, document.get("tracks")),
        "alternate_locations": _url_list(base, document.get("alternate-locations")),
        **_status(status.get("status") if isinstance(status, dict) else None,
                  status.get("reason") if isinstance(status, dict) else None),
        "last_serial": serial if isinstance(serial, int) and not isinstance(serial, bool) else None,
    }


def _status(status: Any, reason: Any) -> dict[str, str | None]:
    """PEP 792: a known status (unknown values are dropped: clients treat absence as active)."""
    if not isinstance(status, str) or status.lower() not in PROJECT_STATUSES:
        return {"status": None, "status_reason": None}
    return {"status": status.lower(), "status_reason": reason if isinstance(reason, str) and reason else None}


def _optional_url(base: URL, value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return str(resolve(base, value)[0])
    except ValueError:
        return None


def _url_list(base: URL, values: Any) -> tuple[str, ...]:
    if not isinstance(values, list):
        return ()
    found = (_optional_url(base, value) for value in values)
    return tuple(dict.fromkeys(url for url in found if url is not None))


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


# HTML (PEP 503) -----------------------------------------------------------------------------------


def _decode(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


class _AnchorParser(HTMLParser):
    """Collects every anchor's attributes and text, the document's ``<base href>``, and the
    ``pypi:*`` meta tags (PEP 629 repository-version, PEP 708, PEP 792); repeated ones in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.meta: dict[str, list[str]] = {}
        self.base_href: str | None = None
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    @property
    def api_version(self) -> str | None:
        return next(iter(self.meta.get("pypi:repository-version", ())), None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._close_anchor()
            self._open = dict(attrs)
        elif tag == "meta":
            found = dict(attrs)
            name, content = found.get("name"), found.get("content")
            if name and name.startswith("pypi:") and content is not None:
                self.meta.setdefault(name, []).append(content)
        elif tag == "base" and self.base_href is None:
            self.base_href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._close_anchor()

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def close(self) -> None:
        super().close()
        self._close_anchor()

    def _close_anchor(self) -> None:
        if self._open is not None:
            self.anchors.append((self._open, "".join(self._text).strip()))
        self._open = None
        self._text = []


def _html_base(page_url: str, base_href: str | None) -> URL:
    """What relative links resolve against: the page's URL, or its ``<base href>`` (as pip does)."""
    base = URL(page_url)
    if base_href:
        try:
            return resolve(base, base_href)[0]
        except ValueError:
            pass
    return base


def _html_page(body: bytes, page_url: str) -> tuple[list[IndexFile], None, dict[str, Any]]:
    parser = _AnchorParser()
    parser.feed(_decode(body))
    parser.close()
    _check_api_version(parser.api_version)
    base = _html_base(page_url, parser.base_href)
    files = [file for attrs, text in parser.anchors if (file := _html_file(attrs, text, base)) is not None]
    meta = parser.meta
    extras = {
        "tracks": _url_list(base, meta.get("pypi:tracks")),
        "alternate_locations": _url_list(base, meta.get("pypi:alternate-locations")),
        **_status(next(iter(meta.get("pypi:project-status", ())), None),
                  next(iter(meta.get("pypi:project-status-reason", ())), None)),
    }
    return files, None, extras


def _html_file(attrs: dict[str, str | None], text: str, base: URL) -> IndexFile | None:
    href = attrs.get("href")
    if not href:
        return None
    try:
        url, fragment = resolve(base, href)
    except ValueError:
        return None
    filename = text or url.name
    yanked = attrs.get("data-yanked")
    metadata = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))  # PEP 714
    return IndexFile(
        filename=filename,
        url=str(url),
        hashes=_hash_pair(fragment),
        requires_python=attrs.get("data-requires-python") or None,
        yanked_reason=None if "data-yanked" not in attrs else (yanked or ""),
        core_metadata=None if "data-core-metadata" not in attrs and "data-dist-info-metadata" not in attrs
        else _html_metadata(metadata),
        provenance=_optional_url(base, attrs.get("data-provenance")),
    )


def _hash_pair(text: str | None) -> dict[str, str]:
    match = _HASH.match(text or "")
    return {match.group(1).lower(): match.group(2).lower()} if match else {}


def _html_metadata(value: str | None) -> dict[str, str] | None:
    if value is None or value.lower() == "true" or value == "":
        return {}
    if value.lower() == "false":
        return None
    return _hash_pair(value) or {}
