"""Reading an upstream's PEP 503 HTML page: its anchors, ``<base href>`` and ``pypi:*`` meta tags."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from yarl import URL

from proxy.core.indexpage import IndexFile
from proxy.core.parse_fields import check_api_version, optional_url, project_status, url_list
from proxy.core.urls import resolve

_HASH = re.compile(r"^([a-z0-9_]+)=([0-9a-f]+)$", re.IGNORECASE)


def decode(body: bytes) -> str:
    """The page as text: UTF-8, undecodable bytes replaced (browsers and pip read it so)."""
    return body.decode("utf-8", errors="replace")


class AnchorParser(HTMLParser):
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


def html_page(body: bytes, page_url: str) -> tuple[list[IndexFile], None, dict[str, Any]]:
    """The files a PEP 503 page lists (relative links resolved against its ``<base href>``), no
    versions list (HTML has none), and its PEP 708/792 keys. InvalidUpstreamResponse for an
    unknown API version (PEP 629)."""
    parser = AnchorParser()
    parser.feed(decode(body))
    parser.close()
    check_api_version(parser.api_version)
    base = _html_base(page_url, parser.base_href)
    files = [file for attrs, text in parser.anchors if (file := _html_file(attrs, text, base)) is not None]
    meta = parser.meta
    extras = {
        "tracks": url_list(base, meta.get("pypi:tracks")),
        "alternate_locations": url_list(base, meta.get("pypi:alternate-locations")),
        **project_status(next(iter(meta.get("pypi:project-status", ())), None),
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
        provenance=optional_url(base, attrs.get("data-provenance")),
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
