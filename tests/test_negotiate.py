"""Content negotiation for the simple API (STANDARDS C1, C2; PEP 691)."""

from __future__ import annotations

import pytest

from proxy.core.errors import NotAcceptable
from proxy.core.negotiate import HTML_V1, JSON_V1, TEXT_HTML, MediaRange, choose_content_type, parse_accept

# pip's index collector, verbatim.
PIP = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
# uv's registry client: the same three types, other q-values, no spaces.
UV = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CHROME = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,"
    "*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)


@pytest.mark.parametrize(("accept", "expected"), [
    pytest.param(PIP, JSON_V1, id="pip"),
    pytest.param(UV, JSON_V1, id="uv"),
    pytest.param(PIP.replace(", ", ","), JSON_V1, id="pip-without-spaces"),
    pytest.param(",".join(reversed(UV.split(", "))), JSON_V1, id="uv-reversed-order"),
])
def test_c2_installers_get_json(accept: str, expected: str) -> None:
    """C2: pip's and uv's Accept headers must both get PEP 691 JSON."""
    assert choose_content_type(accept) == expected


@pytest.mark.parametrize(("accept", "expected"), [
    pytest.param(None, TEXT_HTML, id="no-accept"),
    pytest.param("", TEXT_HTML, id="empty"),
    pytest.param("   ", TEXT_HTML, id="blank"),
    pytest.param("*/*", TEXT_HTML, id="wildcard"),
    pytest.param("*/*;q=0.5", TEXT_HTML, id="wildcard-with-q"),
    pytest.param(FIREFOX, TEXT_HTML, id="firefox"),
    pytest.param(CHROME, TEXT_HTML, id="chrome"),
    pytest.param("text/html", TEXT_HTML, id="text-html"),
    pytest.param("text/*", TEXT_HTML, id="text-wildcard"),
])
def test_c2_browsers_and_bare_clients_get_html(accept: str | None, expected: str) -> None:
    """C2: no Accept, */* and browsers get text/html."""
    assert choose_content_type(accept) == expected


@pytest.mark.parametrize(("accept", "expected"), [
    ("application/vnd.pypi.simple.v1+json", JSON_V1),
    ("application/vnd.pypi.simple.v1+html", HTML_V1),
    ("application/vnd.pypi.simple.latest+json", JSON_V1),
    ("application/vnd.pypi.simple.latest+html", HTML_V1),
    ("application/vnd.pypi.simple.latest+json;q=0.5, text/html;q=0.4", JSON_V1),
    ("APPLICATION/VND.PYPI.SIMPLE.V1+JSON", JSON_V1),
    ("Application/Vnd.Pypi.Simple.Latest+Json", JSON_V1),
])
def test_c1_explicit_types_and_latest_alias(accept: str, expected: str) -> None:
    """C1: latest+json / latest+html are answered with the concrete v1 type."""
    assert choose_content_type(accept) == expected


@pytest.mark.parametrize(("accept", "expected"), [
    ("text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.4", TEXT_HTML),
    ("application/vnd.pypi.simple.v1+html;q=0.9, application/vnd.pypi.simple.v1+json;q=0.8", HTML_V1),
    ("*/*;q=0.9, text/html;q=0.1", JSON_V1),  # the most specific range gives text/html its q
    ("text/html;q=0.1, */*;q=0.9", JSON_V1),  # order of ranges does not matter
])
def test_c2_q_values_decide(accept: str, expected: str) -> None:
    """C2: the highest q wins, each offer taking the q of its most specific matching range."""
    assert choose_content_type(accept) == expected


@pytest.mark.parametrize(("accept", "expected"), [
    ("application/vnd.pypi.simple.v1+json;q=0, text/html", TEXT_HTML),
    ("application/vnd.pypi.simple.v1+json;q=0.0, */*", TEXT_HTML),
    ("text/html;q=0, */*", JSON_V1),  # text/html excluded; the wildcard falls to the next choice
    ("text/html;q=0, application/vnd.pypi.simple.v1+json;q=0, */*", HTML_V1),
])
def test_c2_q_zero_excludes(accept: str, expected: str) -> None:
    """C2 (RFC 9110): q=0 means 'not acceptable', even when a wildcard would match."""
    assert choose_content_type(accept) == expected


@pytest.mark.parametrize(("accept", "expected"), [
    # Same q, both exact: the server's order (JSON first), whatever the client's order.
    ("text/html, application/vnd.pypi.simple.v1+json", JSON_V1),
    ("application/vnd.pypi.simple.v1+html, application/vnd.pypi.simple.v1+json", JSON_V1),
    ("text/html, application/vnd.pypi.simple.v1+html", HTML_V1),
    # Same q: an exact match beats a wildcard match, even against the server's order.
    ("application/*;q=0.5, text/html;q=0.5", TEXT_HTML),
    ("*/*;q=0.5, application/vnd.pypi.simple.v1+html;q=0.5", HTML_V1),
    # Only wildcards: among wildcard matches, JSON before v1+html.
    ("application/*", JSON_V1),
])
def test_c2_ties_by_specificity_then_server_order(accept: str, expected: str) -> None:
    """C2: ties are broken by specificity, then by the server's order of preference."""
    assert choose_content_type(accept) == expected


@pytest.mark.parametrize(("accept", "expected"), [
    ("text/html;q=bogus, application/vnd.pypi.simple.v1+json", JSON_V1),
    ("application/vnd.pypi.simple.v1+json;q=abc, text/html;q=0.5", TEXT_HTML),
    ("application/vnd.pypi.simple.v1+json;q=2, text/html;q=0.5", TEXT_HTML),  # q out of range
    ("application/vnd.pypi.simple.v1+json;q=-1, text/html;q=0.5", TEXT_HTML),
    ("application/vnd.pypi.simple.v1+json;q=nan, text/html;q=0.5", TEXT_HTML),
    ("application/vnd.pypi.simple.v1+json;q=, text/html;q=0.5", TEXT_HTML),
    ("text/html;q = 0.5 , application/vnd.pypi.simple.v1+json ; Q=0.7", JSON_V1),
    ("text/html;level=1;q=0.3, application/vnd.pypi.simple.v1+json;q=0.2", TEXT_HTML),
    (",,, ;;, garbage, text/html", TEXT_HTML),
])
def test_c2_malformed_q_values_tolerated(accept: str, expected: str) -> None:
    """C2: a malformed range is skipped, never a 500; the rest of the header still counts."""
    assert choose_content_type(accept) == expected


@pytest.mark.parametrize("accept", [
    "application/json",
    "image/png, text/plain",
    "text/html;q=0",
    "*/*;q=0",
    "garbage",
    "application/vnd.pypi.simple.v2+json",
    "text/html;q=bogus",
])
def test_c2_nothing_acceptable(accept: str) -> None:
    """C2: nothing acceptable is NotAcceptable (406 at the HTTP layer)."""
    with pytest.raises(NotAcceptable, match="acceptable"):
        choose_content_type(accept)


def test_answers_are_remembered_and_refusals_are_not_cached_away() -> None:
    """The answer per Accept header is kept (clients send a few fixed ones); asking again gives
    the same answer, and an unacceptable header is refused every time, not once."""
    pip = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
    assert [choose_content_type(pip) for _ in range(3)] == [JSON_V1] * 3
    for _ in range(2):
        with pytest.raises(NotAcceptable):
            choose_content_type("image/png")


def test_parse_accept_reads_q_values() -> None:
    assert parse_accept(PIP) == [
        MediaRange("application", "vnd.pypi.simple.v1+json", 1.0),
        MediaRange("application", "vnd.pypi.simple.v1+html", 0.1),
        MediaRange("text", "html", 0.01),
    ]


def test_parse_accept_maps_latest_to_v1() -> None:
    """C1: latest+json is parsed as the v1 type it stands for."""
    assert parse_accept("application/vnd.pypi.simple.latest+json;q=0.3") == [
        MediaRange("application", "vnd.pypi.simple.v1+json", 0.3),
    ]


@pytest.mark.parametrize(("media_range", "specificity"), [
    (MediaRange("*", "*", 1.0), 0), (MediaRange("text", "*", 1.0), 1), (MediaRange("text", "html", 1.0), 2),
])
def test_specificity(media_range: MediaRange, specificity: int) -> None:
    assert media_range.specificity == specificity
