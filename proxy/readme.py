"""A project's long description as safe HTML, rendered the way PyPI renders it (readme_renderer)."""

from __future__ import annotations

from email.message import Message

from markupsafe import Markup

_MARKDOWN_VARIANTS = {"gfm": "GFM", "commonmark": "CommonMark"}


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
    (nh3); when it cannot render, the text is shown escaped instead.
    """
    if not text.strip():
        return Markup("")
    # Imported on first use: docutils, pygments and comrak cost ~25 MB and 0.1 s per server
    # process, and only the project pages of the web interface need them.
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
