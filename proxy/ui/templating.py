"""The web interface's one Jinja environment, held by aiohttp-jinja2 for ``render_template``."""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web


def setup_templates(app: web.Application) -> None:
    """Register the interface's autoescaping environment on ``app`` (proxy/ui/handlers.py renders
    with it, in the executor). No default helpers: links go through ``site``, which honours
    ``[server] public_url``. Blocking (Jinja's loader looks at the package on disk): call it in
    the executor."""
    aiohttp_jinja2.setup(
        app, loader=jinja2.PackageLoader("proxy.ui", "templates"), default_helpers=False,
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        auto_reload=False,  # else Jinja stats the template file on every render
    )
