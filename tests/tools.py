"""System tools that some tests need and `pip install '.[test]'` cannot bring.

On a developer's machine a missing tool skips the test with a reason naming the tool and how to
install it, so the README's test command passes on a machine that has only Python. When the
``CI`` environment variable is set (non-empty, as CI services set it and .ci/run does), a
missing tool fails the test instead: CI installs every tool and must never silently skip.
"""

from __future__ import annotations

import os
import shutil

import pytest

CI_ENV = "CI"
# A Chromium other than the one on PATH (e.g. `playwright install chromium`'s, or a snap's).
CHROMIUM_ENV = "PYPI_PROXY_TEST_CHROMIUM"


def require_tool(name: str, how_to_install: str) -> str:
    """The path of the executable ``name`` (a command looked up on PATH, or a path).

    Missing: ``pytest.skip`` with a reason that names it and ``how_to_install``; with ``CI``
    set, ``pytest.fail`` with the same text.
    """
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed ({how_to_install})"
    if os.environ.get(CI_ENV):
        pytest.fail(f"{message}; {CI_ENV} is set, so this test fails rather than skips", pytrace=False)
    pytest.skip(message)


def require_chromium() -> str:
    """Chromium for the browser tests: $PYPI_PROXY_TEST_CHROMIUM, else `chromium` on PATH."""
    return require_tool(os.environ.get(CHROMIUM_ENV) or "chromium",
                        f"apt-get install chromium, or set {CHROMIUM_ENV} to a Chromium binary")
