"""The upstream: a static tree of wheels and PEP 503 / PEP 691 pages, as nginx serves it.

Layout under the tree root::

    simple/index.html, simple/index.json             the project list
    simple/<project>/index.html, index.json          one page per project, both formats
    files/<project>/<filename>[.metadata]            wheels and their core metadata (PEP 658)

File URLs are relative (``../../files/...``) so the tree does not depend on the port.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

from benchkit import plan
from benchkit.wheels import BuiltFile, WheelSpec, write_wheel

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
PAGE_FILE = "page.json"  # our own record of a project's files, beside its two renderings


class Tree:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.simple = root / "simple"
        self.files = root / "files"

    def has(self, project: str) -> bool:
        return (self.simple / project / PAGE_FILE).exists()

    def files_of(self, project: str) -> list[BuiltFile]:
        raw = json.loads((self.simple / project / PAGE_FILE).read_text())
        return [BuiltFile(**entry) for entry in raw]

    def file_path(self, project: str, filename: str) -> Path:
        return self.files / project / filename

    def ensure(self, project: str, specs: list[WheelSpec]) -> list[BuiltFile]:
        """Build ``project``'s wheels and pages unless a previous run left them complete."""
        if self.has(project):
            return self.files_of(project)
        built = [write_wheel(self.files / project, spec) for spec in specs]
        page_dir = self.simple / project
        page_dir.mkdir(parents=True, exist_ok=True)
        (page_dir / "index.html").write_text(project_html(project, built))
        (page_dir / "index.json").write_text(json.dumps(project_json(project, built)))
        # Written last: its presence means the project is complete.
        (page_dir / PAGE_FILE).write_text(json.dumps([vars(f) for f in built]))
        return built

    def write_root(self) -> None:
        names = sorted(p.name for p in self.simple.iterdir() if (p / PAGE_FILE).exists())
        links = "".join(f'<a href="{n}/">{n}</a><br/>\n' for n in names)
        (self.simple / "index.html").write_text(
            '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.1">'
            f"<title>Simple index</title></head><body>\n{links}</body></html>\n")
        (self.simple / "index.json").write_text(json.dumps(
            {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}))


def _url(project: str, filename: str) -> str:
    return f"../../files/{project}/{filename}"


def project_html(project: str, files: list[BuiltFile]) -> str:
    """A PEP 503 page with sha256 fragments and PEP 658/714 metadata attributes."""
    lines = []
    for f in files:
        meta = f"sha256={f.metadata_sha256}"
        lines.append(
            f'<a href="{_url(project, f.filename)}#sha256={f.sha256}" '
            f'data-requires-python="{html.escape(f.requires_python)}" '
            f'data-dist-info-metadata="{meta}" data-core-metadata="{meta}">{f.filename}</a><br/>')
    return ('<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.1">'
            f"<title>Links for {project}</title></head><body><h1>Links for {project}</h1>\n"
            + "\n".join(lines) + "\n</body></html>\n")


def project_json(project: str, files: list[BuiltFile]) -> dict[str, object]:
    """A PEP 691 page, API version 1.1 (PEP 700: sizes, versions, upload times)."""
    versions = sorted({f.version for f in files}, key=lambda v: tuple(int(p) for p in v.split(".")))
    return {
        "meta": {"api-version": "1.1"},
        "name": project,
        "versions": versions,
        "files": [{
            "filename": f.filename,
            "url": _url(project, f.filename),
            "hashes": {"sha256": f.sha256},
            "requires-python": f.requires_python,
            "core-metadata": {"sha256": f.metadata_sha256},
            "dist-info-metadata": {"sha256": f.metadata_sha256},
            "size": f.size,
            "upload-time": "2024-01-01T00:00:00.000000Z",
            "yanked": False,
        } for f in files],
    }


def version_of(i: int) -> str:
    return f"1.{i // 100}.{i % 100}"


def build_base(tree: Tree, scale: plan.Scale, log: Callable[[str], None] = print) -> None:
    """Projects every scenario shares: the big and small pages, the chain, the two blobs."""
    tags = plan.BIG_TAGS
    tree.ensure(plan.BIG, [WheelSpec(plan.BIG, version_of(i // len(tags)), tags[i % len(tags)])
                           for i in range(scale.big_files)])
    tree.ensure(plan.SMALL, [WheelSpec(plan.SMALL, version_of(i)) for i in range(scale.small_files)])
    chain = scale.chain_names()
    for i, name in enumerate(chain):
        requires = (f"{chain[i + 1]}>=1.0",) if i + 1 < len(chain) else ()
        tree.ensure(name, [WheelSpec(name, f"1.{v}", requires_dist=requires) for v in range(3)])
    tree.ensure(plan.BLOB_1MB, [WheelSpec(plan.BLOB_1MB, "1.0", payload_size=scale.file_small)])
    if not tree.has(plan.BLOB_100MB):
        log(f"generating the {scale.file_large >> 20} MiB wheel")
    tree.ensure(plan.BLOB_100MB, [WheelSpec(plan.BLOB_100MB, "1.0", payload_size=scale.file_large)])


def build_per_system(tree: Tree, scale: plan.Scale, systems: list[str], runs: int) -> None:
    """Fresh names for each system and run: cold pages and files, and the thundering-herd file."""
    for system in systems:
        for run in range(1, runs + 1):
            for sample in range(scale.cold_samples):
                name = plan.cold_name(system, run, sample)
                tree.ensure(name, [WheelSpec(name, "1.0")])
            name = plan.herd_name(system, run)
            tree.ensure(name, [WheelSpec(name, "1.0", payload_size=scale.file_large)])


def tree_size(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) if root.exists() else 0

