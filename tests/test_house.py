"""The house's size rules (STYLE.md, issue 13): small modules with one job, thin handlers.

Every module under proxy/ is at most MAX_MODULE_LINES lines, and every aiohttp request handler
(a function in proxy/web/ or proxy/ui/ whose first parameter is annotated ``web.Request``) at
most MAX_HANDLER_LINES, from its ``def`` line to its last, docstring included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "proxy"
MAX_MODULE_LINES = 300
MAX_HANDLER_LINES = 30
# Exceptions, each with the reason it may not be split (none today). An entry for a module or
# handler within the limit is a failure too.
LONG_MODULES: set[str] = set()
LONG_HANDLERS: set[str] = set()

MODULES = sorted(PACKAGE.rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


def handlers(path: Path) -> dict[str, int]:
    """The request handlers of a module, by name, with their length in lines."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.args.args:
            annotation = node.args.args[0].annotation
            if annotation is not None and ast.unparse(annotation).strip("'\"") == "web.Request":
                assert node.end_lineno is not None
                found[node.name] = node.end_lineno - node.lineno + 1
    return found


HANDLER_MODULES = [p for p in MODULES if relative(p).split("/")[1] in ("web", "ui")]
HANDLERS = {f"{relative(path)}:{name}": lines for path in HANDLER_MODULES for name, lines in handlers(path).items()}


@pytest.mark.parametrize("path", MODULES, ids=relative)
def test_every_module_is_small(path: Path) -> None:
    """STYLE: modules of one job, about 50-300 lines."""
    lines = line_count(path)
    if relative(path) in LONG_MODULES:
        assert lines > MAX_MODULE_LINES, f"{relative(path)} is {lines} lines now: remove it from LONG_MODULES"
    else:
        assert lines <= MAX_MODULE_LINES, f"{relative(path)} is {lines} lines; split it along a seam"


@pytest.mark.parametrize("handler", sorted(HANDLERS))
def test_every_request_handler_is_thin(handler: str) -> None:
    """STYLE: a handler reads the request, calls one service method and shapes the response."""
    lines = HANDLERS[handler]
    if handler in LONG_HANDLERS:
        assert lines > MAX_HANDLER_LINES, f"{handler} is {lines} lines now: remove it from LONG_HANDLERS"
    else:
        assert lines <= MAX_HANDLER_LINES, f"{handler} is {lines} lines; move its work into a service or helper"


def test_the_exceptions_name_real_things() -> None:
    assert all((PACKAGE.parent / module).is_file() for module in LONG_MODULES)
    assert LONG_HANDLERS <= set(HANDLERS)


def test_handlers_are_found() -> None:
    """The handler scan sees the handlers the app routes to (else the rule above checks nothing)."""
    assert {"proxy/web/upload.py:upload", "proxy/web/simple.py:page_response", "proxy/web/api.py:project_json",
            "proxy/ui/handlers.py:project"} <= set(HANDLERS)


def test_the_handler_count_includes_the_docstring(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text('async def h(request: web.Request) -> None:\n    """Doc\n    string."""\n    return None\n\n\n'
                      "def other(request: int) -> None:\n    pass\n")
    assert handlers(source) == {"h": 4}
