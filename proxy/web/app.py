"""The application factory: builds every resource from settings, no globals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from aiohttp import web

from proxy.config import Settings
from proxy.core.policy import RULES
from proxy.repository.base import PrivateComponent, Repository
from proxy.repository.catalog import Catalog
from proxy.repository.explain import Explainer
from proxy.repository.jsonapi import JsonApiService
from proxy.repository.policy import PolicyFilter
from proxy.repository.private import PrivateRepository
from proxy.repository.uploads import UploadService
from proxy.repository.upstream import Upstreams
from proxy.storage.advisories import AdvisoryStore
from proxy.storage import backends
from proxy.storage.descriptions import RenderedDescriptions
from proxy.storage.first_seen import FirstSeen
from proxy.storage.private import PrivateStorage
from proxy.storage.private_pages import RenderedPages
from proxy.storage.runfiles import DataDirProbe, metrics_dir
from proxy.storage.sharedhealth import SharedHealth
from proxy.storage.upstream_files import CachedEntry, FileCache
from proxy.ui import assets
from proxy.ui import handlers as ui
from proxy.ui.descriptions import Budget, Descriptions
from proxy.ui.templating import setup_templates
from proxy.upstream.advisories import AdvisoryFeed
from proxy.upstream.client import Upstream
from proxy.upstream.downloads import Downloader
from proxy.upstream.pages import PublicIndex
from proxy.upstream.responses import masked
from proxy.upstream.shared_tier import open_shared_files
from proxy.upstream.wheel_metadata import WheelMetadata
from proxy.web import api, explain, files, filesend, middlewares, ops, simple, upload
from proxy.web.keys import (
    ADVISORIES,
    AUTH,
    AUTH_EXECUTOR,
    CATALOG,
    DATA_DIR_PROBE,
    DESCRIPTIONS,
    EXECUTOR,
    EXPLAINER,
    JSON_API,
    METRICS,
    REPRESENTATIONS,
    SETTINGS,
    SHARED,
    SHARED_HEALTH,
    STORAGE,
    UPLOADS,
)
from proxy.web.metrics import Metrics
from proxy.web.representations import Representations

log = structlog.get_logger(__name__)
AUTH_THREADS = 2  # each scrypt check holds ~16 MiB while it runs


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[middlewares.request_context])
    app[SETTINGS] = settings
    # With workers, each one's counters go to the directory the supervisor gave them all.
    app[METRICS] = Metrics(metrics_dir(settings.data_dir) if settings.server.workers > 1 else None,
                           replica=settings.server.replica if backends.shared_configured(settings.storage) else None)
    app[DATA_DIR_PROBE] = DataDirProbe(settings.data_dir)
    app.on_response_prepare.append(middlewares.stamp_response)
    app.cleanup_ctx.append(_executor)
    app.cleanup_ctx.append(_auth_executor)
    filesend.setup(app, settings)  # the open-file cache, and the front server if any
    app.cleanup_ctx.append(_services)
    app.cleanup_ctx.append(_descriptions)
    app.cleanup_ctx.append(_catalog)
    app.cleanup_ctx.append(upload.staged_sweeper)
    add_routes(app.router)
    return app


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/pypi", upload.upload)
    router.add_post("/pypi/", upload.upload, name="upload")
    router.add_get("/pypi/simple/", simple.root, name="simple_root")
    router.add_get("/pypi/simple", simple.root_redirect)
    router.add_get("/pypi/simple/{project}/", simple.project, name="simple_project")
    router.add_get("/pypi/simple/{project}", simple.project)
    router.add_get("/pypi/files/{project}/{filename}", files.distribution, name="file")
    router.add_get("/pypi/{project}/json", api.project_json, name="json_project")
    router.add_get("/pypi/{project}/json/", api.project_json)
    router.add_get("/pypi/{project}/{version}/json", api.project_json, name="json_version")
    router.add_get("/pypi/{project}/{version}/json/", api.project_json)
    # After the JSON API's routes, which these would shadow: /pypi/<p>/json is not a release.
    router.add_get("/pypi/{project}/", ui.release, name="release_project")
    router.add_get("/pypi/{project}", ui.release)
    router.add_get("/pypi/{project}/{version}/", ui.release, name="release_version")
    router.add_get("/pypi/{project}/{version}", ui.release)
    router.add_get("/-/health", ops.health, name="health")
    router.add_get("/-/metrics", ops.metrics, name="metrics")
    router.add_get("/-/explain/{project}/{version}", explain.explain, name="explain")
    router.add_get("/", ui.home, name="ui_home")
    router.add_get("/-/projects", ui.projects, name="ui_projects")
    router.add_get("/-/projects/{project}/", ui.project, name="ui_project")
    router.add_get("/-/projects/{project}", ui.project)
    router.add_get("/-/status", ui.status, name="ui_status")
    router.add_get("/help/", ui.help_page, name="ui_help")
    router.add_get("/-/static/{name}", assets.asset, name="ui_asset")
    router.add_get("/help", ui.help_page)


async def _executor(app: web.Application) -> AsyncIterator[None]:
    # A pool of our own: aiohttp's default one serves DNS and file responses.
    executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pypi-proxy-io")
    app[EXECUTOR] = executor
    yield
    await asyncio.to_thread(executor.shutdown, wait=True)  # waits for in-flight writes, off the loop


async def _auth_executor(app: web.Application) -> AsyncIterator[None]:
    # Password and token checks (scrypt: ~16 MiB and tens of ms each) in a small pool of their
    # own: a burst of bad logins queues here instead of ahead of every file and page read.
    executor = ThreadPoolExecutor(max_workers=AUTH_THREADS, thread_name_prefix="pypi-proxy-auth")
    app[AUTH_EXECUTOR] = executor
    yield
    await asyncio.to_thread(executor.shutdown, wait=True)


async def _services(app: web.Application) -> AsyncIterator[None]:
    """The private index's stores: the data directory's, or the shared mode's (database and
    object store, proxy.storage.backends)."""
    settings = app[SETTINGS]
    loop = asyncio.get_running_loop()
    stores = await loop.run_in_executor(app[EXECUTOR], backends.open_stores, settings)
    try:
        await loop.run_in_executor(app[EXECUTOR], backends.prepare_for_serving, stores)
        # The interface's templates: its Jinja loader looks at the package on disk, so off the loop.
        await loop.run_in_executor(app[EXECUTOR], setup_templates, app)
        app[STORAGE], app[AUTH] = stores.private, stores.auth
        if stores.shared is not None:
            app[SHARED] = stores.shared
            app[SHARED_HEALTH] = SharedHealth(stores.shared, app[EXECUTOR])
        log.info("storage_ready", data_dir=str(settings.data_dir), shared=stores.shared is not None)
        yield
    finally:
        await loop.run_in_executor(app[EXECUTOR], stores.close)


async def _descriptions(app: web.Application) -> AsyncIterator[None]:
    """Rendered descriptions of private releases. Renderer processes are started per render
    (none while idle); closing kills those in flight."""
    settings = app[SETTINGS]
    files = RenderedDescriptions(settings.data_dir)
    if removed := await asyncio.get_running_loop().run_in_executor(app[EXECUTOR], files.sweep):
        log.warning("temp_files_swept", count=removed)
    limits = settings.descriptions
    budget = Budget(limits.render_max_size, limits.render_timeout, limits.render_memory)
    app[DESCRIPTIONS] = descriptions = Descriptions(files, app[EXECUTOR], budget, limits.cache_memory)
    yield
    await descriptions.close()


async def _catalog(app: web.Application) -> AsyncIterator[None]:
    """The merged index; with upstream on, its HTTP session, page cache and file cache too."""
    settings = app[SETTINGS]
    executor = app[EXECUTOR]
    upstream_settings = settings.upstream
    upstreams = None
    async with contextlib.AsyncExitStack() as stack:
        if upstream_settings.enabled:
            session = await stack.enter_async_context(Upstream.new_session(upstream_settings))
            upstream = Upstream(upstream_settings, session)
            loop = asyncio.get_running_loop()
            # On this host's disk, or shared with the other replicas (with turns to fetch a page).
            pages = await loop.run_in_executor(executor, backends.open_page_cache, settings, app.get(SHARED))
            stack.push_async_callback(loop.run_in_executor, executor, pages.close)
            if (turns := backends.fetch_turns(settings, app.get(SHARED))) is not None:
                stack.push_async_callback(turns.close)
            files = await _file_cache(settings, executor, stack)
            index = PublicIndex(upstream, pages, executor, upstream_settings, turns=turns)
            stack.push_async_callback(index.close)
            wheel_metadata = WheelMetadata(upstream, files, executor)
            shared_files = await open_shared_files(app.get(SHARED), settings, executor, stack)
            if shared_files is not None:  # local hits keep files recent in the whole cluster too
                files.usage.add_listener(shared_files.usage.local_uses)
            downloader = Downloader(upstream, files, executor, committed=wheel_metadata.committed,
                                    max_size=min(upstream_settings.max_file_size, files.max_size or 2**63),
                                    shared=shared_files)
            wheel_metadata.downloader = downloader
            stack.push_async_callback(downloader.close)
            stack.push_async_callback(wheel_metadata.close)
            upstream.health.add_listener(app[METRICS].upstream())
            upstreams = Upstreams(index, files, downloader, wheel_metadata, upstream_settings.list_projects,
                                  upstream.health, masked(upstream.base))
            log.info("upstream_ready", url=masked(upstream.base), reserved=list(upstream_settings.reserved))
        private = await _private(app, stack)
        policy = await _policy(app, executor, stack) if upstreams is not None else None
        app[CATALOG] = catalog = Catalog(private, upstreams, upstream_settings.reserved, executor, policy)
        stack.push_async_callback(catalog.close)
        feed = app.get(ADVISORIES)
        app[EXPLAINER] = Explainer(catalog, (lambda: ops.advisory_figures(feed.status())) if feed is not None else None)
        app[REPRESENTATIONS] = representations = Representations(
            executor, settings.cache.rendered_memory, RenderedPages(settings.data_dir))
        stack.push_async_callback(representations.close)
        app[JSON_API] = JsonApiService(catalog, executor)
        # Uploads ask the catalog whether upstream serves a name before it is made private.
        app[UPLOADS] = UploadService(app[STORAGE], app[AUTH], executor, settings.upload, app[AUTH_EXECUTOR],
                                     catalog, max_description_size=settings.descriptions.max_size)
        yield


async def _private(app: web.Application, stack: contextlib.AsyncExitStack) -> PrivateComponent:
    """The private component: on the data directory, or following the shared database."""
    shared = app.get(SHARED)
    if shared is None:
        storage = app[STORAGE]
        assert isinstance(storage, PrivateStorage), "the embedded mode's store"
        return PrivateRepository(storage, app[EXECUTOR])
    from proxy.repository.shared import SharedPrivateRepository  # SQLAlchemy, psycopg: only when shared

    settings = app[SETTINGS]
    component = SharedPrivateRepository(shared.private, shared.objects, settings.storage.objects, app[EXECUTOR],
                                        data_dir=settings.data_dir)
    await component.start()
    stack.push_async_callback(component.close)
    return component


async def _policy(app: web.Application, executor: ThreadPoolExecutor,
                  stack: contextlib.AsyncExitStack) -> Callable[[Repository], PolicyFilter] | None:
    """The policy component's maker, when any rule is on (else nothing is added to the chain);
    with an advisory rule on, the advisory feed too (``app[ADVISORIES]``), refreshed in the
    background and stopped with the app."""
    settings = app[SETTINGS]
    rules = settings.policy.rules()
    if not rules.active:
        return None
    loop = asyncio.get_running_loop()
    first_seen = None
    if rules.cooldown:
        first_seen = await loop.run_in_executor(executor, FirstSeen, settings.data_dir / "policy" / "first-seen")
        stack.push_async_callback(loop.run_in_executor, executor, first_seen.close)
    feed = None
    if settings.policy.needs_advisories:
        store = AdvisoryStore(settings.data_dir / "policy" / "osv")
        feed = app[ADVISORIES] = AdvisoryFeed(settings.policy.advisories, store, executor,
                                              settings.policy.advisories_refresh)
        await feed.start()
        stack.push_async_callback(feed.close)
    log.info("policy_ready", rules=[name for name in RULES if getattr(rules, name, None) not in ("off", (), 0.0)],
             dry_run=rules.dry_run, advisories=feed.status().source if feed else None)
    return lambda inner: PolicyFilter(inner, rules, feed, first_seen, executor)


async def _file_cache(settings: Settings, executor: ThreadPoolExecutor, stack: contextlib.AsyncExitStack) -> FileCache:
    """The file cache, its shared ledger started and corrected from a scan of the files, and
    brought under the limit (it may have been lowered since the last run)."""
    files = FileCache(settings.data_dir, settings.cache.files_max_size)
    loop = asyncio.get_running_loop()
    entries = await loop.run_in_executor(executor, _prepare_file_cache, files)
    await files.usage.start()
    stack.push_async_callback(files.usage.close)
    corrected = await files.usage.reconcile(entries, files.entry)
    if corrected:
        log.info("cache_usage_corrected", files=corrected)
    eviction = await files.usage.evict()
    if eviction is not None and eviction.keys:
        log.info("cache_evicted", files=len(eviction.keys), bytes=eviction.freed, cache_bytes=eviction.remaining)
    return files


def _prepare_file_cache(files: FileCache) -> list[CachedEntry]:
    files.prepare()
    removed = files.sweep()  # a locked one, or a young one, may belong to another live process
    if removed:
        log.warning("partial_downloads_removed", count=removed)
    return files.scan()


def runner_options() -> dict[str, Any]:
    """Options for AppRunner/TestServer: our structured access log instead of aiohttp's."""
    return {"access_log_class": middlewares.AccessLogger}
