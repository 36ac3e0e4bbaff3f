"""A database that cannot be reached is a 503 for clients, naming neither its address nor its
credentials (those go to the log): the one mapping in proxy/web/middlewares.py."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxy.core.errors import DatabaseUnavailable
from proxy.web.middlewares import request_context


async def test_database_unavailable_is_503_with_retry_after(aiohttp_client: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        raise DatabaseUnavailable("postgresql://pypi:***@db.internal/pypi", "connection refused")

    app = web.Application(middlewares=[request_context])
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    response = await client.get("/")
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    body = await response.text()
    assert body == "The index's database is unavailable; try again shortly.\n"
    assert "db.internal" not in body and "db.internal" not in response.reason
