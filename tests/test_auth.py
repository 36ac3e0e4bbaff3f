"""Users and API tokens (STANDARDS E2): salted scrypt hashes, scopes, nothing stored in plain text.

Every hash or check is one scrypt call (~50 ms): tests share a store where they can.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.core.errors import Forbidden, Unauthenticated
from proxy.core.identity import Identity
from proxy.storage.auth import TOKEN_PREFIX, TOKEN_USER, AuthError, AuthStore, parse_basic_auth

PASSWORD = "a long password"


@pytest.fixture
def store(tmp_path: Path) -> AuthStore:
    auth = AuthStore(tmp_path)
    auth.add_user("alice", PASSWORD)
    return auth


def test_e2_password_login(store: AuthStore) -> None:
    """E2: HTTP basic with a user's password; no scope means every project."""
    identity = store.authenticate("alice", PASSWORD)
    assert identity == Identity("alice", None, None, None)
    assert identity.may_upload("anything")


@pytest.mark.parametrize(("user", "password"), [
    pytest.param("alice", "wrong password", id="wrong-password"),
    pytest.param("alice", "", id="empty-password"),
    pytest.param("alice", PASSWORD.upper(), id="case-matters"),
    pytest.param("mallory", PASSWORD, id="unknown-user"),
    pytest.param("Alice", PASSWORD, id="user-names-are-exact"),
    pytest.param("", "", id="nothing"),
])
def test_e2_bad_logins_are_unauthenticated(store: AuthStore, user: str, password: str) -> None:
    with pytest.raises(Unauthenticated):
        store.authenticate(user, password)


def test_e2_token_lifecycle(store: AuthStore) -> None:
    """E2: a token authenticates as user __token__ until it is revoked."""
    token_id, token = store.create_token("alice", description="CI")
    assert token.startswith(f"{TOKEN_PREFIX}{token_id}-")
    identity = store.authenticate(TOKEN_USER, token)
    assert (identity.user, identity.token_id) == ("alice", token_id)
    assert [t["id"] for t in store.tokens("alice")] == [token_id]
    assert store.tokens("alice")[0]["description"] == "CI"
    store.revoke_token(token_id)
    with pytest.raises(Unauthenticated):
        store.authenticate(TOKEN_USER, token)
    assert store.tokens() == []
    with pytest.raises(AuthError, match="No token"):
        store.revoke_token(token_id)


@pytest.mark.parametrize("mangle", [
    pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="wrong-secret"),
    pytest.param(lambda t: t.replace(TOKEN_PREFIX, ""), id="no-prefix"),
    pytest.param(lambda t: TOKEN_PREFIX + "000000000000-" + t.split("-", 3)[-1], id="unknown-id"),
    pytest.param(lambda t: t[: len(TOKEN_PREFIX) + 12], id="id-only"),
    pytest.param(lambda t: "", id="empty"),
])
def test_e2_mangled_tokens_fail(store: AuthStore, mangle: Callable[[str], str]) -> None:
    _, token = store.create_token("alice")
    with pytest.raises(Unauthenticated):
        store.authenticate(TOKEN_USER, mangle(token))


def test_e2_a_token_is_not_a_password(store: AuthStore) -> None:
    _, token = store.create_token("alice")
    with pytest.raises(Unauthenticated):
        store.authenticate("alice", token)
    with pytest.raises(Unauthenticated):
        store.authenticate(TOKEN_USER, PASSWORD)


def test_e2_token_of_a_removed_user_fails(store: AuthStore) -> None:
    _, token = store.create_token("alice")
    assert store.remove_user("alice") == 1
    with pytest.raises(Unauthenticated):
        store.authenticate(TOKEN_USER, token)
    assert store.tokens() == [] and store.users() == []


def test_e2_token_of_a_recreated_user_stays_revoked(store: AuthStore) -> None:
    """Removing a user removes their tokens: re-adding the name does not revive them."""
    _, token = store.create_token("alice")
    store.remove_user("alice")
    store.add_user("alice", PASSWORD)
    with pytest.raises(Unauthenticated):
        store.authenticate(TOKEN_USER, token)


def test_token_for_unknown_user(store: AuthStore) -> None:
    with pytest.raises(AuthError, match="No user"):
        store.create_token("nobody")


def test_e2_token_scope_is_normalised(store: AuthStore) -> None:
    """A token for 'Acme_*' may upload to acme-tools under any spelling, and nothing else."""
    _, token = store.create_token("alice", projects=["Acme_*", "My.Pkg"])
    identity = store.authenticate(TOKEN_USER, token)
    assert identity.token_projects == ("acme-*", "my-pkg")
    for allowed in ("acme-tools", "Acme_Tools", "ACME.tools", "my-pkg", "My_Pkg"):
        assert identity.may_upload(allowed), allowed
    for refused in ("tools", "acme", "my-pkg2", "other-acme-x"):
        assert not identity.may_upload(refused), refused
    with pytest.raises(Forbidden, match="not allowed to upload to project 'tools'"):
        identity.require_upload("tools")


def test_e2_user_scope_is_normalised_and_applies_to_tokens(store: AuthStore) -> None:
    """A user's scope also limits every token of theirs, even an unscoped one."""
    store.add_user("carol", PASSWORD, projects=["Acme_*"])
    assert store.authenticate("carol", PASSWORD).may_upload("acme-widget")
    _, token = store.create_token("carol")
    identity = store.authenticate(TOKEN_USER, token)
    assert identity.may_upload("acme-widget") and not identity.may_upload("widget")


@pytest.mark.parametrize(("user_scope", "token_scope", "project", "allowed"), [
    (None, None, "x", True),
    (("acme-*",), None, "acme-tools", True),
    (("acme-*",), None, "Acme_Tools", True),
    (("acme-*",), None, "tools", False),
    (None, ("acme-tools",), "acme-tools", True),
    (None, ("acme-tools",), "acme-tools-extra", False),
    (("acme-*",), ("acme-tools",), "acme-tools", True),
    (("acme-*",), ("acme-tools",), "acme-other", False),  # the token narrows the user
    (("acme-*",), ("other",), "other", False),  # and cannot widen it
    (("a?c",), None, "abc", True),
    (("a?c",), None, "abbc", False),
])
def test_e2_scopes(user_scope: tuple[str, ...] | None, token_scope: tuple[str, ...] | None,
                   project: str, allowed: bool) -> None:
    identity = Identity("u", "t" if token_scope else None, user_scope, token_scope)
    assert identity.may_upload(project) is allowed
    if allowed:
        identity.require_upload(project)
    else:
        with pytest.raises(Forbidden):
            identity.require_upload(project)


def test_secrets_are_stored_only_as_salted_scrypt(store: AuthStore) -> None:
    """auth.json holds no plaintext password or token; same password, different salted hashes."""
    store.add_user("bob", PASSWORD)
    token_id, token = store.create_token("bob")
    raw = store.path.read_text()
    secret = token[len(TOKEN_PREFIX) + 13:]
    assert PASSWORD not in raw
    assert token not in raw and secret not in raw
    data = json.loads(raw)
    alice, bob = data["users"]["alice"]["password"], data["users"]["bob"]["password"]
    token_hash = data["tokens"][token_id]["hash"]
    for stored in (alice, bob, token_hash):
        scheme, salt, digest = stored.split("$")
        assert scheme == "scrypt"
        assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(digest)) == 32
    assert alice != bob, "same password, different salt"
    assert alice.split("$")[1] != bob.split("$")[1]
    assert store.path.stat().st_mode & 0o077 == 0, "auth.json is private to the service user"


def test_users_listing_has_no_hashes(store: AuthStore) -> None:
    store.add_user("dave", PASSWORD, projects=["X_y"])
    users = {u["name"]: u for u in store.users()}
    assert set(users) == {"alice", "dave"}
    assert users["dave"]["projects"] == ["x-y"]
    assert all("password" not in u for u in users.values())


@pytest.mark.parametrize(("name", "password", "needle"), [
    ("bad name", PASSWORD, "Invalid user name"),
    ("__token__", PASSWORD, "Invalid user name"),
    ("", PASSWORD, "Invalid user name"),
    ("-x", PASSWORD, "Invalid user name"),
    ("a:b", PASSWORD, "Invalid user name"),  # a colon cannot be sent in HTTP basic auth
    ("ok", "short", "too short"),
])
def test_invalid_new_users(tmp_path: Path, name: str, password: str, needle: str) -> None:
    store = AuthStore(tmp_path)
    with pytest.raises(AuthError, match=needle):
        store.add_user(name, password)
    assert not store.path.exists()


def test_duplicate_user_keeps_the_first_password(store: AuthStore) -> None:
    with pytest.raises(AuthError, match="exists"):
        store.add_user("alice", "another password")
    assert store.authenticate("alice", PASSWORD).user == "alice"


def test_remove_unknown_user(store: AuthStore) -> None:
    with pytest.raises(AuthError, match="No user"):
        store.remove_user("nobody")


def _basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


@pytest.mark.parametrize(("header", "expected"), [
    (_basic(b"alice:pw"), ("alice", "pw")),
    (_basic(b"alice:pw:with:colons"), ("alice", "pw:with:colons")),
    (_basic(b"__token__:pypi-proxy-x-y"), ("__token__", "pypi-proxy-x-y")),
    ("basic " + base64.b64encode(b"a:").decode(), ("a", "")),
    ("  Basic   " + base64.b64encode(b"a:b").decode() + "  ", ("a", "b")),
    (_basic("jürgen:pässword".encode()), ("jürgen", "pässword")),
])
def test_e2_parse_basic_auth(header: str, expected: tuple[str, str]) -> None:
    """E2 (RFC 7617): user and password from the Authorization header."""
    assert parse_basic_auth(header) == expected


@pytest.mark.parametrize("header", ["Bearer x", "Basic", "Basic ", "Basic !!!", _basic(b"no-colon"), _basic(b"\xff:x"), ""])
def test_e2_parse_basic_auth_rejects(header: str) -> None:
    with pytest.raises(ValueError):
        parse_basic_auth(header)
