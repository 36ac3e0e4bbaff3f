"""Typed application state: every shared object of a running app, declared in one place."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from proxy.auth import AuthStore
from proxy.config import Settings
from proxy.metrics import Metrics
from proxy.services.catalog import Catalog
from proxy.services.descriptions import Descriptions
from proxy.services.index import IndexService
from proxy.services.jsonapi import JsonApiService
from proxy.services.upload import UploadService
from proxy.storage import PrivateStorage

SETTINGS = web.AppKey("settings", Settings)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
AUTH_EXECUTOR = web.AppKey("auth_executor", ThreadPoolExecutor)  # scrypt checks only
STORAGE = web.AppKey("storage", PrivateStorage)
AUTH = web.AppKey("auth", AuthStore)
INDEX = web.AppKey("index", IndexService)
CATALOG = web.AppKey("catalog", Catalog)
JSON_API = web.AppKey("json_api", JsonApiService)
UPLOADS = web.AppKey("uploads", UploadService)
METRICS = web.AppKey("metrics", Metrics)
DESCRIPTIONS = web.AppKey("descriptions", Descriptions)
REQUEST_ID = web.RequestKey("request_id", str)
