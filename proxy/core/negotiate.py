"""Content negotiation for the simple index by ``Accept`` header (PEP 691)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from proxy.core.errors import NotAcceptable

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
# Server preference for explicit matches, best first (PEP 691: JSON is the modern format).
OFFERED = (JSON_V1, HTML_V1, TEXT_HTML)
# Accept headers remembered with the answer (least recently used go first): clients send a few
# fixed ones (pip's, uv's, a browser's), so a request costs a look-up, not a parse.
REMEMBERED = 256
# When only a wildcard matches, plain HTML is the safe answer for browsers and old tools.
WILDCARD_PREFERENCE = (TEXT_HTML, JSON_V1, HTML_V1)
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}


@dataclass(frozen=True, slots=True)
class MediaRange:
    type: str
    subtype: str
    q: float

    @property
    def specificity(self) -> int:
        return (self.type != "*") + (self.subtype != "*")

    def matches(self, content_type: str) -> bool:
        offered_type, offered_subtype = content_type.split("/", 1)
        return self.type in ("*", offered_type) and self.subtype in ("*", offered_subtype)


def weighted(header: str) -> list[tuple[str, float]]:
    """The lower-cased tokens of a q-weighted header (Accept, Accept-Encoding: RFC 9110 12.4.2)
    with their q-values, in order; leniently: an empty token, or a q-value that is not a number
    from 0 to 1, drops its entry."""
    found = []
    for part in header.split(","):
        token, *params = (piece.strip() for piece in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = -1.0
        if token and 0.0 <= q <= 1.0:
            found.append((token.lower(), q))
    return found


def parse_accept(header: str) -> list[MediaRange]:
    """Parse an Accept header leniently: malformed ranges and q-values are skipped."""
    ranges = []
    for media, q in weighted(header):
        media = _ALIASES.get(media, media)
        if "/" in media:
            main, sub = media.split("/", 1)
            ranges.append(MediaRange(main, sub, q))
    return ranges


def choose_content_type(accept: str | None) -> str:
    """Pick the representation to serve, or raise NotAcceptable.

    Each offer gets the q of the most specific range that matches it (RFC 9110 12.5.1).
    Ties go to the more specific match, then to server order; a bare wildcard prefers
    text/html, so browsers and curl get the page they expect while pip and uv get JSON.
    """
    if not accept or not accept.strip():
        return TEXT_HTML
    return _choose(accept)


@lru_cache(maxsize=REMEMBERED)
def _choose(accept: str) -> str:
    ranges = parse_accept(accept)
    best: tuple[float, int, int] | None = None
    chosen = None
    for offer in OFFERED:
        matching = [r for r in ranges if r.matches(offer)]
        if not matching:
            continue
        top = max(matching, key=lambda r: r.specificity)
        if top.q <= 0:
            continue
        order = OFFERED if top.specificity == 2 else WILDCARD_PREFERENCE
        preference = -order.index(offer)
        rank = (top.q, top.specificity, preference)
        if best is None or rank > best:
            best, chosen = rank, offer
    if chosen is None:
        raise NotAcceptable(f"None of {', '.join(OFFERED)} is acceptable")
    return chosen
