"""One contract for every store of users and API tokens (issue 14): the filesystem's auth.json
and the SQL store on SQLite and PostgreSQL authenticate, scope and revoke alike, and a second
instance on the same storage (another replica) refuses a revoked token at once.

Every hash or check is one scrypt call (~50 ms): tests share a store where they can.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from proxy.core.errors import Unauthenticated
from proxy.core.identity import Identity
from proxy.storage.auth import TOKEN_PREFIX, TOKEN_USER, AuthError, AuthStore
from proxy.storage.sql.schema import tokens, users
from proxy.storage.sql.users import SqlAuthStore
from tests.storebackends import KINDS, AuthStores, Backend, open_backend

PASSWORD = "a long password"


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from open_backend(request, request.param, tmp_path)


@pytest.fixture
def store(backend: Backend) -> AuthStores:
    auth = backend.auth()
    auth.add_user("alice", PASSWORD)
    return auth


def test_password_login(store: AuthStores) -> None:
    """E2: HTTP basic with a user's password; no scope means every project."""
    assert store.authenticate("alice", PASSWORD) == Identity("alice", None, None, None)
    for user, password in (("alice", "wrong password"), ("alice", ""), ("Alice", PASSWORD), ("mallory", PASSWORD)):
        with pytest.raises(Unauthenticated, match="Invalid username or password"):
            store.authenticate(user, password)


def test_token_lifecycle(store: AuthStores) -> None:
    """E2: a token authenticates as user __token__ until it is revoked."""
    token_id, token = store.create_token("alice", description="CI")
    assert token.startswith(f"{TOKEN_PREFIX}{token_id}-")
    identity = store.authenticate(TOKEN_USER, token)
    assert (identity.user, identity.token_id) == ("alice", token_id)
    [listed] = store.tokens("alice")
    assert (listed["id"], listed["user"], listed["description"], listed["projects"]) == (token_id, "alice", "CI", None)
    assert listed["created"].endswith("Z") and "hash" not in listed
    assert store.tokens("bob") == []
    with pytest.raises(Unauthenticated):
        store.authenticate("alice", token)  # a token is not a password
    with pytest.raises(Unauthenticated):
        store.authenticate(TOKEN_USER, token[:-1] + ("A" if token[-1] != "A" else "B"))
    store.revoke_token(token_id)
    with pytest.raises(Unauthenticated, match="Invalid or revoked API token"):
        store.authenticate(TOKEN_USER, token)
    assert store.tokens() == []
    with pytest.raises(AuthError, match="No token"):
        store.revoke_token(token_id)


def test_a_revoked_token_is_refused_at_once_by_another_instance(backend: Backend, store: AuthStores) -> None:
    """Issue 14: revoked on replica A (or by the CLI), refused by replica B at its next check."""
    other = backend.auth()
    token_id, token = store.create_token("alice")
    assert other.authenticate(TOKEN_USER, token).token_id == token_id
    store.revoke_token(token_id)
    with pytest.raises(Unauthenticated):
        other.authenticate(TOKEN_USER, token)


def test_removing_a_user_removes_their_tokens_for_good(store: AuthStores) -> None:
    _, token = store.create_token("alice")
    store.create_token("alice")
    assert store.remove_user("alice") == 2
    with pytest.raises(Unauthenticated):
        store.authenticate(TOKEN_USER, token)
    assert store.tokens() == [] and store.users() == []
    store.add_user("alice", PASSWORD)
    with pytest.raises(Unauthenticated):
        store.authenticate(TOKEN_USER, token)
    with pytest.raises(AuthError, match="No user"):
        store.remove_user("nobody")


def test_a_token_needs_a_user(store: AuthStores) -> None:
    with pytest.raises(AuthError, match="No user 'nobody'"):
        store.create_token("nobody")
    assert store.tokens() == []


def test_scopes_are_normalised(store: AuthStores) -> None:
    """A user's and a token's project patterns, as any spelling of the names they match."""
    store.add_user("carol", PASSWORD, projects=["Acme_*", "My.Pkg"])
    assert store.authenticate("carol", PASSWORD).user_projects == ("acme-*", "my-pkg")
    _, token = store.create_token("carol", projects=["Acme_Tools"])
    identity = store.authenticate(TOKEN_USER, token)
    assert (identity.user_projects, identity.token_projects) == (("acme-*", "my-pkg"), ("acme-tools",))
    assert identity.may_upload("ACME.tools") and not identity.may_upload("acme-other")
    assert store.tokens("carol")[0]["projects"] == ["acme-tools"]


def test_users_listing_has_no_hashes(store: AuthStores) -> None:
    store.add_user("dave", PASSWORD, projects=["X_y"])
    listed = store.users()
    assert [u["name"] for u in listed] == ["alice", "dave"]
    assert listed[1]["projects"] == ["x-y"] and listed[0]["projects"] is None
    assert all(set(u) == {"name", "projects", "created"} and u["created"].endswith("Z") for u in listed)


@pytest.mark.parametrize(("name", "password", "needle"), [
    ("bad name", PASSWORD, "Invalid user name"),
    ("__token__", PASSWORD, "Invalid user name"),
    ("a:b", PASSWORD, "Invalid user name"),
    ("ok", "short", "too short"),
    ("alice", "another password", "already exists"),
])
def test_invalid_new_users_change_nothing(store: AuthStores, name: str, password: str, needle: str) -> None:
    with pytest.raises(AuthError, match=needle):
        store.add_user(name, password)
    assert [u["name"] for u in store.users()] == ["alice"]
    assert store.authenticate("alice", PASSWORD).user == "alice"


def test_concurrent_adds_of_one_user_exactly_one_wins(backend: Backend) -> None:
    stores = [backend.auth() for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def add(n: int) -> None:
        barrier.wait()
        try:
            stores[n].add_user("erin", f"password number {n}")
            outcomes.append("added")
        except AuthError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=add, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["User 'erin' already exists."] * 3 + ["added"]
    assert [u["name"] for u in stores[0].users()] == ["erin"]


def test_secrets_are_stored_only_as_salted_scrypt(backend: Backend, store: AuthStores) -> None:
    store.add_user("bob", PASSWORD)
    token_id, token = store.create_token("bob")
    secret = token[len(TOKEN_PREFIX) + 13:]
    if isinstance(store, AuthStore):
        data = json.loads(store.path.read_text())
        hashes = [data["users"]["alice"]["password"], data["users"]["bob"]["password"], data["tokens"][token_id]["hash"]]
        everything = store.path.read_text()
    else:
        assert isinstance(store, SqlAuthStore)
        with store.engine.connect() as connection:
            passwords = dict(connection.execute(select(users.c.name, users.c.password)).all())
            stored_tokens = dict(connection.execute(select(tokens.c.id, tokens.c.hash)).all())
        hashes = [passwords["alice"], passwords["bob"], stored_tokens[token_id]]
        everything = repr((passwords, stored_tokens))
    assert PASSWORD not in everything and token not in everything and secret not in everything
    for stored in hashes:
        scheme, salt, digest = stored.split("$")
        assert scheme == "scrypt"
        assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(digest)) == 32
    assert hashes[0] != hashes[1], "same password, different salt"
