"""Parse upstream simple-API responses (PEP 691 JSON, PEP 503 HTML) into the one page model.

Each format is read by its own module (``parse_json``, ``parse_html``, what they share in
``parse_fields``); here the answer is dispatched on its content type and made one IndexPage."""

from __future__ import annotations

import re

from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename
from yarl import URL

from proxy.core.errors import InvalidName, InvalidUpstreamResponse
from proxy.core.indexpage import IndexFile, IndexPage
from proxy.core.models import version_key
from proxy.core.names import check_safe_filename, normalize
from proxy.core.parse_html import AnchorParser, decode, html_page
from proxy.core.parse_json import json_document, json_files, json_project_keys

JSON_TYPES = ("application/vnd.pypi.simple.v1+json", "application/json")
_LEGACY_SDIST = re.compile(r"^(?P<stem>.+?)(\.tar\.gz|\.tar\.bz2|\.tar\.xz|\.tgz|\.zip|\.tar)$", re.IGNORECASE)


def _is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in JSON_TYPES


def parse_project_page(body: bytes, content_type: str, page_url: str, name: str) -> IndexPage:
    """Upstream's project page as the model; file URLs made absolute against ``page_url`` (G1).

    Everything the page says survives: PEP 700 sizes and upload times, PEP 708 ``tracks`` and
    ``alternate-locations``, PEP 740 provenance URLs, PEP 792 project status, ``_last-serial``.
    An entry that cannot be read (no filename, a URL yarl cannot parse, another scheme than
    http(s)) is skipped; a page that is not a simple-API page at all is InvalidUpstreamResponse.
    """
    if _is_json(content_type):
        document = json_document(body)
        files, versions = json_files(document, page_url)
        extras = json_project_keys(document, URL(page_url))
    else:
        files, versions, extras = html_page(body, page_url)
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
        document = json_document(body)
        projects = document.get("projects")
        if not isinstance(projects, list):
            raise InvalidUpstreamResponse("upstream's project list has no 'projects' list")
        return [p["name"] for p in projects if isinstance(p, dict) and isinstance(p.get("name"), str) and p["name"]]
    parser = AnchorParser()
    parser.feed(decode(body))
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
