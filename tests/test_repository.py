"""The repository chain (issue 13): components composed by priority, with small in-memory components.

A second source, an allow-list or a policy filter is one more component: these tests build such
chains without a server, storage or upstream, and check the rules every composition keeps
(a private name shadows the public one entirely; excluded names never reach the inner component).
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from proxy.core.errors import ProjectNotFound
from proxy.core.indexpage import IndexFile, IndexPage
from proxy.core.merge import CacheState, Source
from proxy.core.negotiate import JSON_V1, TEXT_HTML
from proxy.repository import rules
from proxy.repository.base import ProjectList, ProjectPage, Repository, Resource
from proxy.repository.shadowing import Shadowing
from proxy.web.representations import Representations


class Memory:
    """A Repository held in a dict: project name -> {filename: path}; it records every call."""

    def __init__(self, source: Source, projects: dict[str, dict[str, str]], display: dict[str, str] | None = None,
                 listed: bool = True, version: Hashable = 1) -> None:
        self.source = source
        self.projects = projects
        self.display = display or {}
        self.listed = listed
        self.version = version
        self.asked: list[tuple[str, str]] = []
        self.builds = 0

    async def claims(self, name: str) -> bool:
        self.asked.append(("claims", name))
        return self.source is not Source.PRIVATE or name in self.projects

    def _files(self, name: str) -> dict[str, str]:
        if name not in self.projects:
            raise ProjectNotFound(f"no {name}", project=name)
        return self.projects[name]

    async def project_page(self, name: str, *, cached_only: bool = False) -> ProjectPage:
        self.asked.append(("page", name))
        files = self._files(name)

        def build() -> IndexPage:
            self.builds += 1
            listed = tuple(IndexFile(f, f"../../files/{name}/{f}", {"sha256": "0" * 64}) for f in sorted(files))
            return IndexPage(name, listed, ())

        cache = CacheState.HIT if self.source is Source.UPSTREAM else None
        return ProjectPage(name, self.source, (name, self.version), build, len(files), cache)

    async def project_list(self) -> ProjectList:
        self.asked.append(("list", ""))
        if not self.listed:
            return ProjectList(self.source, None)
        names = [self.display.get(name, name) for name in self.projects]
        return ProjectList(self.source, self.version, lambda: names)

    async def resource(self, project: str, filename: str) -> Resource:
        self.asked.append(("resource", project))
        files = self._files(project)
        if filename not in files:
            raise ProjectNotFound(f"no {filename}", project=project)
        return Resource(self.source, path=Path(files[filename]))


@pytest.fixture
def executor() -> ThreadPoolExecutor:
    with ThreadPoolExecutor(2) as pool:
        yield pool


def chain(private: Repository, public: Repository, executor: ThreadPoolExecutor,
          reserved: tuple[str, ...] = ()) -> Shadowing:
    return Shadowing([private, rules.valid_names(rules.reserved(public, reserved))], executor)


async def test_a_private_name_shadows_every_page_and_file_of_the_public_project(executor) -> None:
    private = Memory(Source.PRIVATE, {"demo": {"demo-1.0.tar.gz": "/private/demo-1.0.tar.gz"}})
    public = Memory(Source.UPSTREAM, {"demo": {"demo-2.0.tar.gz": "/up/demo-2.0.tar.gz"},
                                      "other": {"other-1.0.tar.gz": "/up/other-1.0.tar.gz"}})
    repo = chain(private, public, executor)

    page = await repo.project_page("demo")
    assert (page.source, [f.filename for f in page.build().files]) == (Source.PRIVATE, ["demo-1.0.tar.gz"])
    # A file the private project lacks is a 404, never upstream's file of that name.
    with pytest.raises(ProjectNotFound):
        await repo.resource("demo", "demo-2.0.tar.gz")
    assert not [call for call in public.asked if call[1] == "demo"]
    assert (await repo.resource("other", "other-1.0.tar.gz")).path == Path("/up/other-1.0.tar.gz")
    assert (await repo.project_page("other")).cache is CacheState.HIT


@pytest.mark.parametrize("name", ["internal-tool", "internal-x", "acme"])
async def test_a_reserved_name_never_reaches_the_inner_component(executor, name) -> None:
    public = Memory(Source.UPSTREAM, {name: {"f-1.0.tar.gz": "/up/f"}})
    repo = chain(Memory(Source.PRIVATE, {}), public, executor, reserved=("internal-*", "acme"))
    for call in (repo.project_page(name), repo.resource(name, "f-1.0.tar.gz")):
        with pytest.raises(ProjectNotFound) as raised:
            await call
        assert raised.value.project == name
    assert public.asked == []
    assert await repo.claims(name) is False


@pytest.mark.parametrize("name", ["internal-tool ", "-lead", "trail-", "a b", "ünïcode", "x/../y", ""])
async def test_an_invalid_name_never_reaches_the_inner_component(executor, name) -> None:
    public = Memory(Source.UPSTREAM, {name: {"f-1.0.tar.gz": "/up/f"}})
    repo = chain(Memory(Source.PRIVATE, {}), public, executor)
    with pytest.raises(ProjectNotFound):
        await repo.project_page(name)
    assert public.asked == []


async def test_lists_merge_one_name_each_with_the_private_spelling_and_without_excluded_names(executor) -> None:
    private = Memory(Source.PRIVATE, {"my-lib": {}, "demo": {}}, display={"my-lib": "My.Lib"})
    public = Memory(Source.UPSTREAM, {"my-lib": {}, "requests": {}, "internal-x": {}, "bad name": {}},
                    display={"my-lib": "my_lib"})
    repo = chain(private, public, executor, reserved=("internal-*",))
    listing = await repo.project_list()
    assert (listing.source, list(listing.names())) == (Source.MERGED, ["demo", "My.Lib", "requests"])


async def test_the_merged_list_is_computed_once_per_version_and_again_when_one_changes(executor) -> None:
    private = Memory(Source.PRIVATE, {"a": {}})
    public = Memory(Source.UPSTREAM, {"b": {}})
    repo = chain(private, public, executor)
    first, second = await asyncio.gather(repo.project_list(), repo.project_list())
    assert first.version == second.version and first.names() is second.names()
    private.projects["c"] = {}
    assert list((await repo.project_list()).names()) == ["a", "b"]  # same version: the merge is kept
    private.version = 2
    listing = await repo.project_list()
    assert list(listing.names()) == ["a", "b", "c"] and listing.version != first.version


async def test_a_source_without_a_list_leaves_the_private_list_alone(executor) -> None:
    repo = chain(Memory(Source.PRIVATE, {"a": {}}), Memory(Source.UPSTREAM, {"b": {}}, listed=False), executor)
    listing = await repo.project_list()
    assert (listing.source, list(listing.names())) == (Source.PRIVATE, ["a"])


async def test_a_new_rule_is_one_more_component_in_the_chain(executor) -> None:
    """An allow-list (a curated index) wraps upstream like the built-in rules, with no other edit."""
    public = Memory(Source.UPSTREAM, {"requests": {"r.tar.gz": "/up/r"}, "leftpad": {"l.tar.gz": "/up/l"}})
    allowed = {"requests"}
    curated = rules.Excluding(public, lambda name: name not in allowed, "not on the allow-list")
    repo = Shadowing([Memory(Source.PRIVATE, {}), curated], executor)
    assert (await repo.project_page("requests")).source is Source.UPSTREAM
    with pytest.raises(ProjectNotFound) as raised:
        await repo.resource("leftpad", "l.tar.gz")
    assert raised.value.project == "leftpad" and not [call for call in public.asked if call[1] == "leftpad"]
    with pytest.raises(ProjectNotFound, match="not on the allow-list"):  # asked directly, the rule says why
        await curated.project_page("leftpad")
    assert list((await repo.project_list()).names()) == ["requests"]


async def test_a_second_upstream_answers_what_the_first_does_not_claim(executor) -> None:
    """Two upstreams: names under a prefix go to the internal mirror, the rest to the public one."""
    mirror = Memory(Source.UPSTREAM, {"corp-auth": {"c.whl": "/mirror/c.whl"}})
    pypi = Memory(Source.UPSTREAM, {"corp-auth": {"evil.whl": "/pypi/evil.whl"}, "six": {"s.whl": "/pypi/s.whl"}})
    repo = Shadowing([Memory(Source.PRIVATE, {}),
                      rules.Excluding(mirror, lambda n: not n.startswith("corp-"), "not a corp name"),
                      rules.Excluding(pypi, lambda n: n.startswith("corp-"), "a corp name")], executor)
    assert (await repo.resource("corp-auth", "c.whl")).path == Path("/mirror/c.whl")
    assert (await repo.resource("six", "s.whl")).path == Path("/pypi/s.whl")
    assert not [call for call in pypi.asked if call[1] == "corp-auth"]


async def test_no_component_claims_the_name_then_not_found(executor) -> None:
    repo = Shadowing([Memory(Source.PRIVATE, {})], executor)
    with pytest.raises(ProjectNotFound):
        await repo.project_page("anything")


class Store:
    def __init__(self) -> None:
        self.files: dict[tuple[str, str, str], bytes] = {}

    def read(self, project: str, stamp_text: str, kind: str) -> bytes | None:
        return self.files.get((project, stamp_text, kind))

    def write(self, project: str, stamp_text: str, kind: str, body: bytes) -> None:
        self.files[(project, stamp_text, kind)] = body


async def test_representations_render_each_version_once_shared_by_concurrent_requests(executor) -> None:
    source = Memory(Source.UPSTREAM, {"demo": {f"demo-{i}.0.tar.gz": "/x" for i in range(300)}})
    pages = Representations(executor, 2**24)
    page = await source.project_page("demo")
    answers = await asyncio.gather(*(pages.project_page(page, JSON_V1) for _ in range(5)))
    assert source.builds == 1 and len({id(answer) for answer in answers}) == 1
    html = await pages.project_page(page, TEXT_HTML)
    assert source.builds == 2 and html.content_type == TEXT_HTML and html.etag != answers[0].etag
    assert answers[0].gzip is not None and answers[0].gzip_etag not in ("", answers[0].etag)
    source.version = 2
    await pages.project_page(await source.project_page("demo"), JSON_V1)
    assert source.builds == 3


async def test_private_pages_are_kept_in_the_store_and_read_back_by_another_process(executor) -> None:
    store = Store()
    source = Memory(Source.PRIVATE, {"demo": {"demo-1.0.tar.gz": "/x"}}, version="stamp-1")
    page = await source.project_page("demo")
    first = await Representations(executor, 2**20, store).project_page(page, JSON_V1)
    assert store.files[("demo", str(page.version), "json")] == first.body
    again = await Representations(executor, 2**20, store).project_page(page, JSON_V1)  # a new worker
    assert again.body == first.body and source.builds == 1


async def test_a_failed_render_is_not_kept(executor) -> None:
    calls = 0

    def build() -> IndexPage:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk hiccup")
        return IndexPage("demo", (), ())

    page = ProjectPage("demo", Source.UPSTREAM, 1, build, 0)
    pages = Representations(executor, 2**20)
    with pytest.raises(RuntimeError):
        await pages.project_page(page, JSON_V1)
    assert (await pages.project_page(page, JSON_V1)).body.startswith(b"{")
