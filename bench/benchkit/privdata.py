"""A proxy data directory with many private projects, written in the proxy's on-disk format.

The format is that of proxy/storage/private.py and proxy/core/models.py: ``private/<name>/project.json``
(indent 1, sorted keys) beside each file and its ``.metadata``, and the ``private/.projects``
stamp. Writing it directly takes seconds where uploading 13,000 files would take minutes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchkit import plan
from benchkit.wheels import BuiltFile, WheelSpec, write_wheel

UPLOAD_TIME = "2024-01-01T00:00:00.000000Z"
READY = ".bench-complete"


def stored_file(built: BuiltFile) -> dict[str, Any]:
    return {
        "filename": built.filename, "version": built.version, "packagetype": "bdist_wheel",
        "python_version": "py3", "size": built.size, "sha256": built.sha256, "md5": built.md5,
        "blake2_256": built.blake2_256, "upload_time": UPLOAD_TIME, "uploader": "bench",
        "requires_python": built.requires_python, "metadata_sha256": built.metadata_sha256,
        "yanked_reason": None,
    }


def release(version: str, requires_python: str) -> dict[str, Any]:
    return {
        "version": version, "summary": "A benchmark package", "description": "Benchmark package.\n",
        "description_content_type": None, "author": None, "author_email": None, "maintainer": None,
        "maintainer_email": None, "license": None, "license_expression": None, "keywords": None,
        "home_page": None, "download_url": None, "requires_python": requires_python, "classifiers": [],
        "requires_dist": [], "provides_extra": [], "project_urls": [], "platform": [],
    }


def write_project(private: Path, name: str, versions: list[str]) -> None:
    directory = private / name
    built = [write_wheel(directory, WheelSpec(name, version)) for version in versions]
    index = {
        "name": name, "display_name": name, "serial": len(built),
        "files": [stored_file(b) for b in built],
        "releases": [release(b.version, b.requires_python) for b in built],
    }
    (directory / "project.json").write_text(json.dumps(index, indent=1, sort_keys=True))


def project_names(scale: plan.Scale) -> list[str]:
    """The names ``ensure_data_dir`` writes: the one with many versions first."""
    return [plan.MANY_VERSIONS] + [f"private-{i:05d}" for i in range(scale.private_projects - 1)]


def ensure_data_dir(data_dir: Path, scale: plan.Scale) -> Path:
    """Build (once) the data dir: ``scale.private_projects`` projects, one with many versions."""
    private = data_dir / "private"
    names = project_names(scale)
    if not (data_dir / READY).exists():
        private.mkdir(parents=True, exist_ok=True)
        write_project(private, plan.MANY_VERSIONS, [f"1.{i // 100}.{i % 100}" for i in range(scale.many_versions)])
        for name in names[1:]:
            write_project(private, name, ["1.0"])
        _check_format(private / plan.MANY_VERSIONS / "project.json")
        (data_dir / READY).write_text(scale.name)
    # The list of every project's names, as the proxy keeps it beside the indexes (rewritten on
    # each run, so a data dir from an older format is brought up to date).
    (private / ".projects").write_text(json.dumps({"format": 1, "names": {n: n for n in names}}, sort_keys=True))
    return data_dir


def _check_format(index: Path) -> None:
    """Load one index with the proxy's own model, when importable, so a format drift fails loudly."""
    try:
        from proxy.core.models import PrivateProject
    except ImportError:
        return
    PrivateProject.from_json(json.loads(index.read_text()))
