"""Render the web interface's pages from their view models: one autoescaping Jinja environment."""

from __future__ import annotations

import functools
from typing import Any

import jinja2


@functools.cache
def _environment() -> jinja2.Environment:
    # No auto_reload: Jinja would stat the template file on every render.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("proxy", "templates/ui"),
        autoescape=True,
        auto_reload=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def page(template: str, view: Any) -> str:
    """The HTML page of ``view`` (which has a ``site``). Blocking: a template is read on first use."""
    return _environment().get_template(template).render(view=view, site=view.site)
