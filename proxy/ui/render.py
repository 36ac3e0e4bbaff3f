"""Render the web interface's pages from their view models: one autoescaping Jinja environment."""

from __future__ import annotations

from typing import Any

import jinja2


def environment_options() -> dict[str, Any]:
    """Options of the interface's Jinja environment (aiohttp_jinja2.setup builds it per app)."""
    return {
        "loader": jinja2.PackageLoader("proxy.ui", "templates"),
        "autoescape": True,
        "auto_reload": False,  # else Jinja stats the template file on every render
        "undefined": jinja2.StrictUndefined,
        "trim_blocks": True,
        "lstrip_blocks": True,
    }


def page(environment: jinja2.Environment, template: str, view: Any) -> str:
    """The HTML page of ``view`` (which has a ``site``). Blocking: a template is read on first use."""
    return environment.get_template(template).render(view=view, site=view.site)
