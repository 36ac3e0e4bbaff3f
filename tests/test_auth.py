"""Users and tokens (STANDARDS E2): salted slow hashes, constant-time checks, scopes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from proxy.auth import AuthError, AuthStore, Identity, parse_basic_auth
from proxy.errors import Forbidden, Unauthenticated

PASSWORD = "a long password"


@pytest.fixture
def store(tmp_path: Path) -> AuthStore:
    auth = AuthStore(tmp_path)
    auth.add_user("alice", PASSWORD)
    return auth


def test_password_login(store: AuthStore) -> None:
    identity = store.authenticate("alice", PASSWORD)
    assert (identity.user, identity.token_id) == ("alice", None)
    assert identity.may_upload("anything")


@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("mallory", PASSWORD), ("", "")])
def test_bad_logins(store: AuthStore, user: str, password: str) -> None:
    with pytest.raises(Unauthenticated):
        store.authenticate(user, password)


def test_token_lifecycle(store: AuthStore) -> None:
    token_id, token = store.create_token("alice", projects=["My_Pkg"])
    identity = store.authenticate("__token__", token)
    assert identity.token_id == token_id
    assert identity.may_upload("my-pkg") and not identity.may_upload("other")
    store.revoke_token(token_id)
    with pytest.raises(Unauthenticated):
        store.authenticate("__token__", token)
    with pytest.raises(AuthError):
        store.revoke_token(token_id)


def test_token_with_wrong_secret_or_of_removed_user(store: AuthStore) -> None:
    _, token = store.create_token("alice")
    with pytest.raises(Unauthenticated):
        store.authenticate("__token__", token[:-1] + ("A" if token[-1] != "A" else "B"))
    store.remove_user("alice")
    with pytest.raises(Unauthenticated):
        store.authenticate("__token__", token)


def test_secrets_are_stored_only_as_salted_scrypt(store: AuthStore) -> None:
    store.add_user("bob", PASSWORD)
    _, token = store.create_token("bob")
    raw = store.path.read_text()
    assert PASSWORD not in raw and token.split("-")[-1] not in raw
    users = json.loads(raw)["users"]
    assert users["alice"]["password"].startswith("scrypt$")
    assert users["alice"]["password"] != users["bob"]["password"], "same password, different salt"
    assert store.path.stat().st_mode & 0o077 == 0, "auth.json is private to the service user"


@pytest.mark.parametrize(("user_scope", "token_scope", "project", "allowed"), [
    (None, None, "x", True),
    (("acme-*",), None, "acme-tools", True),
    (("acme-*",), None, "tools", False),
    (None, ("acme-tools",), "acme-tools", True),
    (("acme-*",), ("other",), "other", False),
])
def test_scopes(user_scope: tuple[str, ...] | None, token_scope: tuple[str, ...] | None, project: str, allowed: bool) -> None:
    identity = Identity("u", "t" if token_scope else None, user_scope, token_scope)
    assert identity.may_upload(project) is allowed
    if not allowed:
        with pytest.raises(Forbidden):
            identity.require_upload(project)


def test_user_patterns_are_normalised(store: AuthStore) -> None:
    store.add_user("carol", PASSWORD, projects=["Acme_*"])
    assert store.authenticate("carol", PASSWORD).may_upload("acme-widget")


@pytest.mark.parametrize(("name", "password"), [("bad name", PASSWORD), ("__token__", PASSWORD), ("ok", "short")])
def test_invalid_new_users(store: AuthStore, name: str, password: str) -> None:
    with pytest.raises(AuthError):
        store.add_user(name, password)


def test_duplicate_user(store: AuthStore) -> None:
    with pytest.raises(AuthError, match="exists"):
        store.add_user("alice", PASSWORD)


def _basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


@pytest.mark.parametrize(("header", "expected"), [
    (_basic(b"alice:pw"), ("alice", "pw")),
    (_basic(b"__token__:pypi-proxy-x:y"), ("__token__", "pypi-proxy-x:y")),
    ("basic " + base64.b64encode(b"a:").decode(), ("a", "")),
])
def test_parse_basic_auth(header: str, expected: tuple[str, str]) -> None:
    assert parse_basic_auth(header) == expected


@pytest.mark.parametrize("header", ["Bearer x", "Basic", "Basic !!!", _basic(b"no-colon"), _basic(b"\xff:x")])
def test_parse_basic_auth_rejects(header: str) -> None:
    with pytest.raises(ValueError):
        parse_basic_auth(header)
