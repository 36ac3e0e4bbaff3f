"""Failed-login limits (issue 12 L5): guessing is refused with 429 and Retry-After before any
scrypt runs, per client address and per user name; right credentials cost nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from proxy.config import Settings
from proxy.core.errors import TooManyAttempts
from proxy.core.identity import Identity
from proxy.core.ratelimit import LoginLimiter
from proxy.storage.auth import AuthStore
from proxy.web.keys import UPLOADS
from tests.builders import Dist
from tests.conftest import PASSWORD, basic, snapshot, start_client, upload_form


class Clock:
    """A clock the test moves by hand: no sleeping for a window to pass."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- The limiter alone ---------------------------------------------------------------------------


async def fail(limiter: LoginLimiter, address: str | None, user: str | None) -> None:
    limiter.failed(await limiter.acquire(address, user))


async def test_a_burst_is_allowed_then_one_attempt_per_refill_interval() -> None:
    clock = Clock()
    limiter = LoginLimiter(per_address=6, per_user=0, clock=clock)
    for _ in range(6):
        await fail(limiter, "10.0.0.1", "alice")
    with pytest.raises(TooManyAttempts) as caught:
        await limiter.acquire("10.0.0.1", "alice")
    assert (caught.value.retry_after, caught.value.what) == (10, "from this address")  # 6 a minute
    clock.now += 9.9
    with pytest.raises(TooManyAttempts):
        await limiter.acquire("10.0.0.1", "alice")
    clock.now += 0.1
    await fail(limiter, "10.0.0.1", "alice")
    await fail(limiter, "10.0.0.2", "alice")  # another address has its own bucket


async def test_successful_attempts_cost_nothing() -> None:
    limiter = LoginLimiter(per_address=2, per_user=2, clock=Clock())
    for _ in range(50):
        limiter.succeeded(await limiter.acquire("10.0.0.1", "alice"))
    await fail(limiter, "10.0.0.1", "alice")
    await fail(limiter, "10.0.0.1", "alice")
    with pytest.raises(TooManyAttempts):
        await limiter.acquire("10.0.0.1", "alice")


async def test_the_user_limit_holds_across_addresses_and_names_itself() -> None:
    limiter = LoginLimiter(per_address=10, per_user=3, clock=Clock())
    for n in range(3):
        await fail(limiter, f"10.0.0.{n}", "alice")
    with pytest.raises(TooManyAttempts, match="for this user; try again in 20 s"):
        await limiter.acquire("10.0.0.9", "alice")
    await fail(limiter, "10.0.0.9", "bob")


async def test_a_refused_attempt_takes_nothing() -> None:
    limiter = LoginLimiter(per_address=1, per_user=5, clock=Clock())
    await fail(limiter, "10.0.0.1", "alice")
    for _ in range(10):
        with pytest.raises(TooManyAttempts):
            await limiter.acquire("10.0.0.1", "alice")
    for n in range(4):  # the user's bucket lost one token, not eleven
        await fail(limiter, f"10.0.1.{n}", "alice")


async def test_attempts_beyond_the_reserve_wait_for_the_checks_under_way() -> None:
    """Two tokens: two attempts are checked at once, a third waits. When both turn out right it
    goes ahead; when both turn out wrong it is refused, never checked."""
    limiter = LoginLimiter(per_address=2, per_user=0, clock=Clock())
    first, second = await limiter.acquire("a", None), await limiter.acquire("a", None)
    third = asyncio.ensure_future(limiter.acquire("a", None))
    await asyncio.sleep(0)  # let it run up to its wait
    assert not third.done()
    limiter.succeeded(first)
    limiter.succeeded(await third)
    limiter.succeeded(second)

    first, second = await limiter.acquire("a", None), await limiter.acquire("a", None)
    third = asyncio.ensure_future(limiter.acquire("a", None))
    await asyncio.sleep(0)
    limiter.failed(first)
    await asyncio.sleep(0)
    assert not third.done(), "one token is left, but the second check holds it"
    limiter.failed(second)
    with pytest.raises(TooManyAttempts):
        await third


async def test_zero_turns_a_limit_off() -> None:
    limiter = LoginLimiter(per_address=0, per_user=0, clock=Clock())
    for _ in range(1000):
        await fail(limiter, "10.0.0.1", "alice")


async def test_memory_is_bounded_by_forgetting_the_least_recently_seen() -> None:
    limiter = LoginLimiter(per_address=1, per_user=0, clock=Clock(), max_keys=100)
    await fail(limiter, "first", None)
    for n in range(100):
        await fail(limiter, f"spray-{n}", None)
    await fail(limiter, "first", None)  # forgotten: a fresh bucket
    with pytest.raises(TooManyAttempts):
        await limiter.acquire("spray-99", None)


# --- Through the real app --------------------------------------------------------------------------


@pytest.fixture
def scrypt_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every credential check that ran (each is one scrypt), by user name."""
    checked: list[str] = []
    real = AuthStore.authenticate

    def counted(self: AuthStore, user: str, password: str) -> Identity:
        checked.append(user)
        return real(self, user, password)

    monkeypatch.setattr(AuthStore, "authenticate", counted)
    return checked


@contextlib.asynccontextmanager
async def from_address(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A client whose connections come from another loopback address than 127.0.0.1."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0))) as session:
        yield session


async def limited_client(aiohttp_client: Any, settings: Settings, clock: Clock) -> TestClient:
    client = await start_client(aiohttp_client, settings)
    service = client.app[UPLOADS]
    service.limiter = LoginLimiter(settings.upload.failed_logins_per_address,
                                   settings.upload.failed_logins_per_user, clock=clock)
    return client


async def test_l5_64_concurrent_bad_logins_mostly_get_429_without_scrypt(
        aiohttp_client: Any, settings: Settings, auth: AuthStore, scrypt_checks: list[str]) -> None:
    """L5's case: 64 concurrent bad logins pushed /-/health from 1 ms to 860 ms. The address's
    burst (10) is checked; the other 54 are refused at once, naming the wait."""
    clock = Clock()
    client = await limited_client(aiohttp_client, settings, clock)
    before = snapshot(settings.data_dir)
    scrypt_checks.clear()
    responses = await asyncio.gather(*(client.post("/pypi/", data=upload_form(Dist("acme", "1.0")),
                                                   headers=basic("alice", f"guess {n}")) for n in range(64)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [401] * 10 + [429] * 54
    assert len(scrypt_checks) == 10, "a refused attempt runs no scrypt"
    limited = [r for r in responses if r.status == 429]
    assert {r.headers["Retry-After"] for r in limited} == {"6"}
    assert "Too many failed logins from this address" in await limited[0].text()
    assert snapshot(settings.data_dir) == before

    async with from_address("127.0.0.2") as other:
        response = await other.post(client.make_url("/pypi/"), data=upload_form(Dist("acme", "1.0")),
                                    headers=basic("alice", PASSWORD))
        assert response.status == 200, await response.text()

    response = await client.post("/pypi/", data=upload_form(Dist("acme", "1.1")), headers=basic("alice", PASSWORD))
    assert response.status == 429, "the limited address must wait, whatever it sends"
    clock.now += 60
    response = await client.post("/pypi/", data=upload_form(Dist("acme", "1.1")), headers=basic("alice", "guess"))
    assert response.status == 401, "after the window, attempts are checked again"
    response = await client.post("/pypi/", data=upload_form(Dist("acme", "1.1")), headers=basic("alice", PASSWORD))
    assert response.status == 200


async def test_l5_right_credentials_are_never_refused_for_their_number(
        aiohttp_client: Any, make_settings: Callable[..., Settings], auth: AuthStore,
        scrypt_checks: list[str]) -> None:
    """Twenty uploads at once from one address (a CI matrix behind one NAT), with a burst of 3:
    all are checked and stored; none is refused for being one too many."""
    settings = make_settings(upload={"failed_logins_per_address": 3})
    client = await limited_client(aiohttp_client, settings, Clock())
    scrypt_checks.clear()
    responses = await asyncio.gather(*(client.post("/pypi/", data=upload_form(Dist("acme", f"1.{n}")),
                                                   headers=basic("alice", PASSWORD)) for n in range(20)))
    assert [r.status for r in responses] == [200] * 20
    assert len(scrypt_checks) == 20


async def test_l5_guessing_one_user_from_many_addresses_is_limited_per_user(
        aiohttp_client: Any, make_settings: Callable[..., Settings], auth: AuthStore,
        scrypt_checks: list[str]) -> None:
    settings = make_settings(upload={"failed_logins_per_address": 3, "failed_logins_per_user": 6})
    client = await limited_client(aiohttp_client, settings, Clock())
    scrypt_checks.clear()
    statuses = []
    for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        async with from_address(address) as session:
            for _ in range(3):
                response = await session.post(client.make_url("/pypi/"), data=upload_form(Dist("acme", "1.0")),
                                              headers=basic("alice", "guess"))
                statuses.append((response.status, (await response.text()).split(";")[0]))
    assert [s for s, _ in statuses] == [401] * 6 + [429] * 3
    assert statuses[-1][1] == "Too many failed logins for this user"
    assert scrypt_checks == ["alice"] * 6
    response = await client.post("/pypi/", data=upload_form(Dist("bob-x", "1.0")), headers=basic("bob", PASSWORD))
    assert response.status == 200, "another user is not held up"


async def test_l5_tokens_are_limited_by_token_id(
        aiohttp_client: Any, make_settings: Callable[..., Settings], auth: AuthStore) -> None:
    """Every token logs in as __token__: the per-user limit counts each token id apart, so
    guessing one token never locks out the others."""
    settings = make_settings(upload={"failed_logins_per_address": 100, "failed_logins_per_user": 2})
    client = await limited_client(aiohttp_client, settings, Clock())
    token_id, token = await asyncio.to_thread(auth.create_token, "alice")
    _, other = await asyncio.to_thread(auth.create_token, "alice")
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    statuses = [(await client.post("/pypi/", data=upload_form(Dist("acme", "1.0")),
                                   headers=basic("__token__", wrong))).status for _ in range(3)]
    assert statuses == [401, 401, 429]
    response = await client.post("/pypi/", data=upload_form(Dist("acme", "1.0")), headers=basic("__token__", other))
    assert response.status == 200


async def test_l5_limits_are_settings(aiohttp_client: Any, make_settings: Callable[..., Settings],
                                      auth: AuthStore) -> None:
    settings = make_settings(upload={"failed_logins_per_address": 1, "failed_logins_per_user": 0})
    client = await start_client(aiohttp_client, settings)
    first = await client.post("/pypi/", data=upload_form(Dist("acme", "1.0")), headers=basic("alice", "guess"))
    second = await client.post("/pypi/", data=upload_form(Dist("acme", "1.0")), headers=basic("alice", "guess"))
    assert (first.status, second.status, second.headers["Retry-After"]) == (401, 429, "60")
