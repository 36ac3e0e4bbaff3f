"""The interface's templates (proxy.ui.templates): Jinja is imported by the first page of the
interface a server process renders, not at start-up (issue 16: ~2.3 MiB per process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from proxy.ui.templates import Templates

SCRIPT = """
import asyncio, sys
from aiohttp.test_utils import TestClient, TestServer
from proxy.config import settings_from_mapping
from proxy.web.app import create_app

async def main():
    settings = settings_from_mapping({"storage": {"data_dir": sys.argv[1]}, "upstream": {"enabled": False}})
    async with TestClient(TestServer(create_app(settings))) as client:
        index = await client.get("/pypi/simple/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        before = "jinja2" in sys.modules
        home = await client.get("/")
        print(index.status, before, home.status, "jinja2" in sys.modules)

asyncio.run(main())
"""


def test_jinja_is_imported_by_the_first_interface_page(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "data")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    index, before, home, after = result.stdout.splitlines()[-1].split()  # after the app's log lines
    assert (index, before, home, after) == ("200", "False", "200", "True")


def test_templates_render_autoescaped_and_refuse_undefined_names() -> None:
    templates = Templates()
    assert not templates.loaded
    import jinja2

    with pytest.raises(jinja2.TemplateNotFound):
        templates.render("absent.html", {})
    assert templates.loaded
    environment = templates._get()
    assert environment.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"
    with pytest.raises(jinja2.UndefinedError):
        environment.from_string("{{ missing }}").render()
