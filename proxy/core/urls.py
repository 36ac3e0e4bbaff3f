"""File URLs as URLs: links resolved against their page, and the URLs of files derived from them.

Every URL here goes through yarl, never string concatenation: a signed file URL carries a query
(``…whl?tok=abc``) that must stay a query when ``.metadata`` is appended (STANDARDS H3, pip#12033),
and percent-encoded characters must reach upstream exactly as listed.
"""

from __future__ import annotations

from yarl import URL

METADATA_SUFFIX = ".metadata"  # PEP 658: the core metadata file of a distribution
PROVENANCE_SUFFIX = ".provenance"  # where this server offers a file's PEP 740 provenance


def resolve(base: URL, href: str) -> tuple[URL, str]:
    """``href`` made absolute against ``base`` (RFC 3986 reference resolution), without its
    fragment, and the fragment (``"sha256=…"`` on simple pages; ``""`` when none).

    Relative, absolute-path, scheme-relative (``//host/x``) and absolute references all resolve;
    the encoding of the path and query is kept as written. ValueError for a URL yarl cannot parse
    (``http://[::1``).
    """
    target = base.join(URL(href, encoded=True))
    if not target.absolute or target.scheme not in ("http", "https") or not target.host:
        raise ValueError(f"not an http(s) URL: {href!r}")
    return target.with_fragment(None), target.raw_fragment


def with_path_suffix(url: str, suffix: str) -> str:
    """The URL with ``suffix`` appended to its path; query kept, fragment dropped.

    ``https://h/f/q-1.0-py3-none-any.whl?tok=abc`` → ``https://h/f/q-1.0-py3-none-any.whl.metadata?tok=abc``;
    relative URLs (``../../files/p/q.whl``) work the same way.
    """
    parsed = URL(url, encoded=True)
    if not parsed.absolute:  # with_path would make "../x" absolute
        return str(URL.build(path=parsed.raw_path + suffix, query_string=parsed.raw_query_string, encoded=True))
    return str(parsed.with_path(parsed.raw_path + suffix, encoded=True, keep_query=True))
