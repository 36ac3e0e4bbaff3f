"""The interface's one Jinja environment, made on the first page of the interface rendered.

Jinja costs a server process ~2.3 MiB resident when imported (issue 16: the whole tree under
120 MiB), and most processes only ever serve installers: it is imported here, on first use, in
the executor thread that renders the page. Autoescaping, undefined names an error, and no
helpers: links go through the view's ``site``, which honours ``[server] public_url``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any


class Templates:
    """Renders ``proxy/ui/templates/<name>``. Blocking (the first call reads the package's
    templates from disk): call it in the executor. Thread-safe."""

    def __init__(self) -> None:
        self._environment: Any = None  # a jinja2.Environment once made
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the environment (and with it Jinja) was made yet."""
        return self._environment is not None

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        """The template ``name`` rendered with ``context``; jinja2's errors as Jinja raises them."""
        return str(self._get().get_template(name).render(context))

    def _get(self) -> Any:
        with self._lock:
            if self._environment is None:
                import jinja2

                self._environment = jinja2.Environment(
                    loader=jinja2.PackageLoader("proxy.ui", "templates"), autoescape=True,
                    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                    auto_reload=False,  # else Jinja stats the template file on every render
                )
            return self._environment
