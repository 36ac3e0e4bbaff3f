"""The package's layering (STYLE.md): each module imports only from its own layer or below."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "proxy"
LAYERS = {
    0: {"proxy", "proxy.errors", "proxy.models", "proxy.names", "proxy.atomic", "proxy.lru",
        "proxy.health", "proxy.sdnotify", "proxy.runfiles", "proxy.urls", "proxy.flights"},
    1: {"proxy.config", "proxy.negotiate", "proxy.render", "proxy.distmeta", "proxy.log", "proxy.parse",
        "proxy.merge", "proxy.metrics", "proxy.requirements", "proxy.lockfiles", "proxy.targets",
        "proxy.readme", "proxy.ui", "proxy.uirender", "proxy.uistatus", "proxy.lazywheel", "proxy.jsonapi",
        "proxy.compression", "proxy.archives", "proxy.wheelzip", "proxy.ratelimit", "proxy.readmechild",
        "proxy.fetchpolicy"},
    2: {"proxy.pagefiles", "proxy.storage", "proxy.auth", "proxy.datadir", "proxy.pagecache", "proxy.filecache",
        "proxy.upstream", "proxy.descfiles", "proxy.ledger", "proxy.cacheusage"},
    3: {"proxy.services", "proxy.services.index", "proxy.services.upload", "proxy.services.public",
        "proxy.services.downloads", "proxy.services.catalog", "proxy.maintenance", "proxy.services.browse",
        "proxy.services.wheelmeta", "proxy.services.jsonapi", "proxy.services.descriptions", "proxy.services.tee",
        "proxy.services.follow", "proxy.services.filespecs"},
    4: {"proxy.web", "proxy.web.keys", "proxy.web.middlewares", "proxy.web.simple", "proxy.web.files",
        "proxy.web.api", "proxy.web.upload", "proxy.web.app", "proxy.server", "proxy.connections",
        "proxy.web.ops", "proxy.web.workerstats", "proxy.web.ui", "proxy.supervisor", "proxy.web.redirects",
        "proxy.web.assets"},
    5: {"proxy.cli", "proxy.__main__", "proxy.warm", "proxy.warmcli", "proxy.worker", "proxy.warmclient"},
}
LAYER_OF = {module: layer for layer, modules in LAYERS.items() for module in modules}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    assert {module_name(p) for p in MODULES} == set(LAYER_OF)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_go_down_only(path: Path) -> None:
    name = module_name(path)
    for imported in imports(path):
        if imported in LAYER_OF:
            assert LAYER_OF[imported] <= LAYER_OF[name], f"{name} imports {imported} from a higher layer"
        if imported in ("aiohttp.web", "aiohttp.web.Application"):
            assert LAYER_OF[name] >= 4, f"{name} uses aiohttp.web below the web layer"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_cleanly_alone(path: Path) -> None:
    """No import cycles and no import-time side effects that need another module first."""
    name = module_name(path)
    if name == "proxy.__main__":
        return
    result = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
