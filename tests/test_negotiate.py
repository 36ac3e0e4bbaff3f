"""Content negotiation for the simple API (STANDARDS C1, C2; PEP 691)."""

from __future__ import annotations

import pytest

from proxy.errors import NotAcceptable
from proxy.negotiate import HTML_V1, JSON_V1, TEXT_HTML, choose_content_type, parse_accept

PIP = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
UV = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(("accept", "expected"), [
    (PIP, JSON_V1),
    (UV, JSON_V1),
    (None, TEXT_HTML),
    ("", TEXT_HTML),
    ("*/*", TEXT_HTML),
    (BROWSER, TEXT_HTML),
    ("text/html", TEXT_HTML),
    ("application/vnd.pypi.simple.latest+json", JSON_V1),
    ("application/vnd.pypi.simple.latest+html", HTML_V1),
    ("application/vnd.pypi.simple.v1+html", HTML_V1),
    ("application/*", JSON_V1),
    ("text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.4", TEXT_HTML),
    ("application/vnd.pypi.simple.v1+json;q=0, text/html", TEXT_HTML),
    ("application/vnd.pypi.simple.v1+json, text/html", JSON_V1),
    ("*/*;q=0.9, text/html;q=0.1", JSON_V1),
    ("text/html;q=bogus, application/vnd.pypi.simple.v1+json", JSON_V1),
    ("APPLICATION/VND.PYPI.SIMPLE.V1+JSON", JSON_V1),
])
def test_c2_choice(accept: str | None, expected: str) -> None:
    assert choose_content_type(accept) == expected


@pytest.mark.parametrize("accept", ["application/json", "image/png, text/plain", "text/html;q=0", "garbage"])
def test_c2_nothing_acceptable(accept: str) -> None:
    with pytest.raises(NotAcceptable):
        choose_content_type(accept)


def test_parse_accept_reads_q_values() -> None:
    ranges = parse_accept(PIP)
    assert [(r.type, r.subtype, r.q) for r in ranges] == [
        ("application", "vnd.pypi.simple.v1+json", 1.0),
        ("application", "vnd.pypi.simple.v1+html", 0.1),
        ("text", "html", 0.01),
    ]
