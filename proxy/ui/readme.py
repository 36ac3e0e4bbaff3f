"""A project's long description as safe HTML, rendered the way PyPI renders it (readme_renderer).

Rendering reStructuredText is slow (docutils: ~4 s and ~90 MB for 256 KiB of inline markup)
and cannot be interrupted, so the server never does it itself: ``proxy.ui.readmechild`` runs
``render_description`` in a process of its own, and ``proxy.ui.descriptions`` keeps the
result. This module is the pure part: the rendering, the plain fallback and the cache key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.message import Message

from markupsafe import Markup

_MARKDOWN_VARIANTS = {"gfm": "GFM", "commonmark": "CommonMark"}
# Why a description is shown as plain text rather than rendered (``Shown.plain_reason``).
TOO_LARGE = "too large"  # above [descriptions] render_max_size: never rendered
TOO_SLOW = "too slow"  # the renderer ran out of render_timeout
TOO_MUCH_MEMORY = "too much memory"  # the renderer ran out of render_memory, or its output cap
NOT_READY = "not ready"  # renders were queued or failed: shown plain now, rendered later


@dataclass(frozen=True, slots=True)
class Shown:
    """How a description appears on its project page: ``html`` when rendered (sanitised), else
    the text escaped in a ``<pre>``, for ``plain_reason`` (one of the constants above)."""

    html: Markup | None
    plain_reason: str = ""

    def markup(self, text: str) -> Markup:
        """The HTML to insert for ``text``: O(len(text)) when plain, so build it off the loop."""
        return self.html if self.html is not None else plain(text)


RENDERED_EMPTY = Shown(Markup(""))


def _content_type(value: str | None) -> tuple[str, dict[str, str]]:
    """``text/markdown; variant=GFM`` → ("text/markdown", {"variant": "GFM"}); RFC 2045 parsing."""
    message = Message()
    message["Content-Type"] = value or "text/x-rst"
    params = {key.lower(): str(val) for key, val in message.get_params(failobj=[])[1:]}
    return message.get_content_type(), params


def plain(text: str) -> Markup:
    """Text shown as written: escaped, in a ``<pre>``."""
    return Markup('<pre class="plain-description">{}</pre>').format(text)


def render_description(text: str, content_type: str | None) -> Markup:
    """Safe HTML of a description by its Description-Content-Type (core metadata 2.1).

    As on PyPI: markdown (GFM unless ``variant=CommonMark``), reStructuredText when the type is
    ``text/x-rst`` or absent, anything else plain. readme_renderer drops raw HTML and scripts
    (nh3); when it cannot render, the text is shown escaped instead. Slow and memory-hungry for
    large reStructuredText: the server calls it only through ``proxy.ui.readmechild``.
    """
    if not text.strip():
        return Markup("")
    # Imported on first use: docutils, pygments and comrak cost ~25 MB and 0.1 s per process.
    import readme_renderer.markdown
    import readme_renderer.rst

    kind, params = _content_type(content_type)
    html: str | None = None
    if kind == "text/markdown":
        variant = _MARKDOWN_VARIANTS.get(params.get("variant", "gfm").lower(), "GFM")
        html = readme_renderer.markdown.render(text, variant=variant)
    elif kind == "text/x-rst":
        html = readme_renderer.rst.render(text)
    if html is None:
        return plain(text)
    return Markup(html)  # sanitised by readme_renderer.clean (nh3)


def renderer_identity() -> str:
    """The versions that shape rendered HTML ("readme_renderer 46.0, docutils 0.23, ..."): part of
    the cache key, so upgrading the renderer renders descriptions again. Blocking (reads package
    metadata from disk)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("readme_renderer", "docutils", "comrak", "nh3", "pygments"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} -")
    return ", ".join(found)


def description_key(text: str, content_type: str | None, renderer: str) -> str:
    """The identity of one rendering: sha256 (hex) over the renderer's identity, the content type
    as written and the text. O(len(text)): run it off the loop for a long description."""
    digest = hashlib.sha256()
    for part in (renderer, content_type or "", text):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(b"%d:" % len(data))  # length-prefixed: no two tuples give one byte stream
        digest.update(data)
    return digest.hexdigest()
