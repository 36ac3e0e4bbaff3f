"""Typed application state: every shared object of a running app, declared in one place."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from proxy.config import Settings
from proxy.repository.catalog import Catalog
from proxy.repository.explain import Explainer
from proxy.repository.jsonapi import JsonApiService
from proxy.repository.uploads import UploadService
from proxy.storage.backends import Shared
from proxy.storage.stores import Authenticator, PrivateStore
from proxy.storage.runfiles import DataDirProbe
from proxy.storage.sharedhealth import SharedHealth
from proxy.ui.descriptions import Descriptions
from proxy.upstream.advisories import AdvisoryFeed
from proxy.web.front import FrontServer
from proxy.web.metrics import Metrics
from proxy.web.openfiles import OpenFiles
from proxy.web.representations import Representations

SETTINGS = web.AppKey("settings", Settings)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
AUTH_EXECUTOR = web.AppKey("auth_executor", ThreadPoolExecutor)  # scrypt checks only
STORAGE = web.AppKey("storage", PrivateStore)  # the data directory's, or the shared mode's (SQL + objects)
AUTH = web.AppKey("auth", Authenticator)
SHARED = web.AppKey("shared", Shared)  # the shared mode's database and object store, only in that mode
SHARED_HEALTH = web.AppKey("shared_health", SharedHealth)  # whether they answer, only in that mode
CATALOG = web.AppKey("catalog", Catalog)
ADVISORIES = web.AppKey("advisories", AdvisoryFeed)  # only while an advisory rule is on
EXPLAINER = web.AppKey("explainer", Explainer)
REPRESENTATIONS = web.AppKey("representations", Representations)
JSON_API = web.AppKey("json_api", JsonApiService)
UPLOADS = web.AppKey("uploads", UploadService)
METRICS = web.AppKey("metrics", Metrics)
DATA_DIR_PROBE = web.AppKey("data_dir_probe", DataDirProbe)
DESCRIPTIONS = web.AppKey("descriptions", Descriptions)
OPEN_FILES = web.AppKey("open_files", OpenFiles)
FRONT = web.AppKey("front", FrontServer)  # only with [server] front_server other than "none"
REQUEST_ID = web.RequestKey("request_id", str)
