"""The house (STYLE.md, issue 13): packages that show the layers, checked as a few package rules
with ``ast`` over the source, and every module importable on its own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "proxy"
# Each package, and what of the project it may import. The foundation (the package's own
# __init__ for the version, ``config`` with its ``configvalues``, and ``oserrors``) may be imported by
# every package.
FOUNDATION = {"proxy", "proxy.config", "proxy.configvalues", "proxy.policyvalues", "proxy.objectsettings",
              "proxy.oserrors", "proxy.log"}
MAY_IMPORT = {
    "core": {"core"},
    "storage": {"core", "storage"},
    "upstream": {"core", "storage", "upstream"},
    "repository": {"core", "storage", "upstream", "repository"},
    "web": {"core", "storage", "upstream", "repository", "web", "ui"},
    "ui": {"core", "storage", "repository", "web", "ui"},
    "ops": {"core", "storage", "upstream", "repository", "web", "ui", "ops"},
    "warm": {"core", "warm"},
    "top": {"core", "storage", "upstream", "repository", "web", "ui", "ops", "warm", "top"},
}
# What the web layer may reach below the repository: only the app factory builds the storage
# and upstream parts it composes; handlers go through the repository.
BUILDERS = {"proxy.web.app", "proxy.web.keys"}
# Modules that do I/O: never imported by the pure core.
IO_MODULES = {"os", "pathlib", "socket", "sqlite3", "diskcache", "aiohttp", "subprocess", "shutil", "tempfile",
              "zipfile", "tarfile", "fcntl", "select", "urllib.request", "jinja2", "aiohttp_jinja2"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    if module in FOUNDATION:
        return "foundation"
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in MAY_IMPORT) else "top"


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
MODULE_NAMES = {module_name(p) for p in MODULES}


def project_imports(path: Path) -> set[str]:
    return {name for name in imports(path) if name in MODULE_NAMES}


def test_every_module_is_in_a_package_that_shows_its_layer() -> None:
    top = sorted(n for n in MODULE_NAMES if package_of(n) == "top")
    assert top == ["proxy.__main__", "proxy.cli"], "new modules belong in a package"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_packages_import_only_what_is_below_them(path: Path) -> None:
    name = module_name(path)
    mine = package_of(name)
    if mine == "foundation":
        allowed = {"core"}
    else:
        allowed = MAY_IMPORT[mine]
    for imported in project_imports(path):
        theirs = package_of(imported)
        assert theirs == "foundation" or theirs in allowed, f"{name} ({mine}) imports {imported} ({theirs})"


@pytest.mark.parametrize("path", [p for p in MODULES if package_of(module_name(p)) == "web"],
                         ids=lambda p: module_name(p))
def test_web_handlers_go_through_the_repository(path: Path) -> None:
    name = module_name(path)
    if name in BUILDERS:
        return
    reached = {imported for imported in project_imports(path)
               if package_of(imported) in ("storage", "upstream")}
    assert not reached, f"{name} reaches past the repository into {sorted(reached)}"


@pytest.mark.parametrize("path", [p for p in MODULES if package_of(module_name(p)) == "core"],
                         ids=lambda p: module_name(p))
def test_nothing_in_core_does_io(path: Path) -> None:
    found = {name.split(".")[0] if name.split(".")[0] in IO_MODULES else name for name in imports(path)}
    assert not found & IO_MODULES, f"{module_name(path)} imports {sorted(found & IO_MODULES)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_the_aiohttp_client_only_in_upstream_and_warm(path: Path) -> None:
    uses_client = any(name == "aiohttp" or name in ("aiohttp.ClientSession", "aiohttp.client")
                      for name in imports(path)) and "aiohttp.web" not in imports(path)
    if uses_client:
        assert package_of(module_name(path)) in ("upstream", "warm"), module_name(path)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_aiohttp_web_only_in_web_ui_and_ops(path: Path) -> None:
    if {"aiohttp.web", "aiohttp.web.Application"} & imports(path) or any(
            name.startswith("aiohttp.web_") for name in imports(path)):
        assert package_of(module_name(path)) in ("web", "ui", "ops"), module_name(path)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_cleanly_alone(path: Path) -> None:
    """No import cycles and no import-time side effects that need another module first."""
    name = module_name(path)
    if name == "proxy.__main__":
        return
    result = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
