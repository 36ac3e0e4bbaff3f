"""The web interface in a real headless Chromium (the system's, driven by Playwright) against a real
`pypi-proxy serve`: home, the search form, a project page; screenshots under the test's tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.builders import Dist
from tests.e2e.conftest import Server, tool
from tests.tools import require_chromium

pytestmark = pytest.mark.e2e
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
DESCRIPTION = """\
A small library for **browser tests**.

## Usage

```python
import browser_demo
print(browser_demo.VALUE)
```

- works without JavaScript
- <script>alert("not run")</script> is shown as text
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Without Chromium (a system package) the tests skip, or fail under CI (tests/tools.py);
    Playwright comes with the test extras, so its absence always fails."""
    chromium = require_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install '.[test]'")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, headless=True)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def published(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Dist:
    dist = Dist("browser-demo", "1.2.0", summary="Shown in a real browser <b>safely</b>",
                description=DESCRIPTION, requires_python=">=3.9")
    older = Dist("browser-demo", "1.1.0", summary="Older")
    paths = [*older.write(tmp_path_factory.mktemp("older")), *dist.write(tmp_path_factory.mktemp("dist"))]
    server.run([tool("twine"), "upload", "--repository-url", server.upload_url, "-u", "__token__",
                "-p", server.token, *map(str, paths)])
    return dist


def shoot(page: Any, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000  # a rendered page, not a blank one
    return path


def png_width(path: Path) -> int:
    """Width from the PNG header: a full-page shot is as wide as the page's content."""
    return int.from_bytes(path.read_bytes()[16:20], "big")


def test_home_search_and_project_page(browser: Any, server: Server, published: Dist, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    console_errors: list[str] = []  # a Content-Security-Policy violation is reported here

    def on_console(message: Any) -> None:
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):  # there is none
            console_errors.append(f"{message.text} at {message.location['url']}")

    page.on("console", on_console)

    page.goto(server.url + "/")
    assert page.title() == "Home · pypi-proxy"
    assert f"index-url = {server.simple}" in page.locator("pre").all_inner_texts()[1]
    assert page.locator("button[data-copy]").first.is_visible()  # JS on: copy buttons appear
    # L4: under the interface's policy (no inline code) its stylesheet and script still apply.
    assert page.evaluate("document.styleSheets.length === 1 && document.styleSheets[0].cssRules.length > 20")
    shoot(page, shots, "home-desktop")

    page.get_by_label("Project name").fill("Browser_DEMO")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/-/projects?q=Browser_DEMO")
    result = page.get_by_role("link", name="browser-demo", exact=True)
    assert result.is_visible()
    shoot(page, shots, "search-desktop")

    result.click()
    page.wait_for_url("**/-/projects/browser-demo/")
    install = page.locator("#install-line")
    assert install.inner_text().strip() == f"pip install browser-demo==1.2.0 --index-url {server.simple}"
    assert page.locator("h1").inner_text().startswith("browser-demo")
    assert page.get_by_text('<script>alert("not run")</script> is shown as text').is_visible()
    assert page.locator("details.release summary").all_inner_texts()[0].startswith("1.2.0")
    shoot(page, shots, "project-desktop")

    page.goto(server.url + "/-/status")
    assert page.locator("h1").inner_text() == "Status"
    shoot(page, shots, "status-desktop")
    assert not errors and not dialogs and not console_errors
    context.close()


def test_phone_without_javascript(browser: Any, server: Server, published: Dist, tmp_path: Path) -> None:
    """On a phone-sized screen, with JavaScript off, every step still works."""
    shots = tmp_path / "screenshots"
    shots.mkdir()
    context = browser.new_context(viewport=PHONE, java_script_enabled=False, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    page = context.new_page()
    page.goto(server.url + "/")
    assert not page.locator("button[data-copy]").first.is_visible()  # JS off: no copy buttons
    assert png_width(shoot(page, shots, "home-phone")) == PHONE["width"] * 2  # nothing overflows sideways
    page.get_by_label("Project name").fill("browser-demo")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/-/projects?q=browser-demo")
    page.get_by_role("link", name="browser-demo", exact=True).click()
    page.wait_for_url("**/-/projects/browser-demo/")
    assert server.simple in page.locator("#install-line").inner_text()
    assert png_width(shoot(page, shots, "project-phone")) == PHONE["width"] * 2
    context.close()


def test_a_release_url_opens_that_release(browser: Any, server: Server, published: Dist) -> None:
    """The JSON API's release_url (/pypi/<p>/<v>/) leads to the project page with that release,
    closed by default as an older one, opened; the help page explains a refused re-upload."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(server.url + "/pypi/Browser_Demo/1.1.0/")
    page.wait_for_url("**/-/projects/browser-demo/#release-1.1")
    assert page.locator("#release-1\\.1").get_attribute("open") is not None
    assert page.locator("#release-1\\.1 summary").inner_text().startswith("1.1.0")
    page.goto(server.url + "/help/#file-name-reuse")
    assert page.locator("#file-name-reuse h2").is_visible()
    context.close()
