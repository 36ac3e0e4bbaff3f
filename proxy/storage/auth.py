"""Users and API tokens: salted scrypt hashes in ``<data_dir>/auth.json``, constant-time checks.

Every call blocks (scrypt is deliberately slow); the server runs them in its executor.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from proxy.core.errors import CorruptStorage, ProxyError, Unauthenticated, describe_corruption
from proxy.core.identity import Identity
from proxy.core.names import normalize
from proxy.core.timestamps import iso_z, utc_now
from proxy.storage.atomic import locked, write_atomic

TOKEN_USER = "__token__"
TOKEN_PREFIX = "pypi-proxy-"
_TOKEN_ID_LENGTH = 12
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
# scrypt cost: ~16 MiB and tens of milliseconds per check; slow for guessing, fine for uploads.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
# Verifying a wrong user must cost as much as a wrong password, so names cannot be probed.
_DUMMY_SALT = b"\0" * 16


class AuthError(ProxyError):
    """A user or token operation that cannot be done (CLI-facing)."""


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, maxmem=64 * 1024**2, **_SCRYPT)
    return f"scrypt${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_secret(secret: str, stored: str | None) -> bool:
    if stored is None:
        hash_secret(secret, _DUMMY_SALT)
        return False
    _scheme, salt, _digest = stored.split("$")
    return hmac.compare_digest(hash_secret(secret, base64.b64decode(salt)), stored)


def check_new_user(name: str, password: str) -> None:
    """AuthError unless ``name`` can be a user's (HTTP basic sends it before a colon) and
    ``password`` is long enough."""
    if not _USER_NAME.match(name) or name == TOKEN_USER:
        raise AuthError(f"Invalid user name {name!r}: letters, digits and . _ @ - only.")
    if len(password) < 8:
        raise AuthError("Password too short: use at least 8 characters.")


def new_token() -> tuple[str, str, str]:
    """A fresh API token: its id (not secret), its secret part and the whole token."""
    token_id = secrets.token_hex(_TOKEN_ID_LENGTH // 2)
    secret = secrets.token_urlsafe(32)
    return token_id, secret, f"{TOKEN_PREFIX}{token_id}-{secret}"


def normalize_patterns(patterns: Sequence[str] | None) -> list[str] | None:
    if not patterns:
        return None
    return [normalize(p) for p in patterns]  # "*" and "?" survive normalisation


class AuthStore:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "auth.json"
        self.lock_path = data_dir / "locks" / "auth.lock"

    def _read(self) -> dict[str, Any]:
        """Users and tokens; CorruptStorage, naming the file, when it cannot be trusted."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"users": {}, "tokens": {}}
        try:
            return _checked(json.loads(raw))
        except (ValueError, TypeError) as exc:
            raise CorruptStorage(str(self.path), self.path.name, describe_corruption(exc), _REPAIR_HINT) from None

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True).encode(), mode=0o600)

    def authenticate(self, username: str, password: str) -> Identity:
        """Identity for basic-auth credentials, or Unauthenticated."""
        data = self._read()
        if username == TOKEN_USER:
            return self._authenticate_token(data, password)
        user = data["users"].get(username)
        if not verify_secret(password, user["password"] if user else None) or user is None:
            raise Unauthenticated("Invalid username or password.")
        return Identity(username, None, as_tuple(user.get("projects")), None)

    def _authenticate_token(self, data: dict[str, Any], token: str) -> Identity:
        token_id, secret = split_token(token)
        record = data["tokens"].get(token_id) if token_id else None
        valid = verify_secret(secret, record["hash"] if record else None)
        owner = data["users"].get(record["user"]) if record else None
        if not valid or record is None or owner is None:
            raise Unauthenticated("Invalid or revoked API token.")
        return Identity(record["user"], token_id, as_tuple(owner.get("projects")), as_tuple(record.get("projects")))

    def add_user(self, name: str, password: str, projects: Sequence[str] | None = None) -> None:
        check_new_user(name, password)
        with locked(self.lock_path):
            data = self._read()
            if name in data["users"]:
                raise AuthError(f"User {name!r} already exists.")
            data["users"][name] = {
                "password": hash_secret(password),
                "projects": normalize_patterns(projects),
                "created": iso_z(utc_now()),
            }
            self._write(data)

    def remove_user(self, name: str) -> int:
        """Remove a user and every token of theirs; return how many tokens went with them."""
        with locked(self.lock_path):
            data = self._read()
            if data["users"].pop(name, None) is None:
                raise AuthError(f"No user {name!r}.")
            tokens = [tid for tid, t in data["tokens"].items() if t["user"] == name]
            for token_id in tokens:
                del data["tokens"][token_id]
            self._write(data)
            return len(tokens)

    def export(self) -> dict[str, Any]:
        """Users and tokens as stored, hashes included (``pypi-proxy migrate`` copies them):
        ``{"users": {name: {...}}, "tokens": {id: {...}}}``; CorruptStorage when unreadable."""
        return self._read()

    def users(self) -> list[dict[str, Any]]:
        data = self._read()
        return [
            {"name": name, "projects": u.get("projects"), "created": u.get("created")}
            for name, u in sorted(data["users"].items())
        ]

    def create_token(self, user: str, projects: Sequence[str] | None = None, description: str = "") -> tuple[str, str]:
        """Create a token; return (token id, the token itself, shown only once)."""
        token_id, secret, token = new_token()
        with locked(self.lock_path):
            data = self._read()
            if user not in data["users"]:
                raise AuthError(f"No user {user!r}.")
            data["tokens"][token_id] = {
                "user": user,
                "hash": hash_secret(secret),
                "projects": normalize_patterns(projects),
                "description": description,
                "created": iso_z(utc_now()),
            }
            self._write(data)
        return token_id, token

    def revoke_token(self, token_id: str) -> None:
        with locked(self.lock_path):
            data = self._read()
            if data["tokens"].pop(token_id, None) is None:
                raise AuthError(f"No token {token_id!r}.")
            self._write(data)

    def tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        data = self._read()
        return [
            {"id": tid, "user": t["user"], "projects": t.get("projects"),
             "description": t.get("description", ""), "created": t.get("created")}
            for tid, t in sorted(data["tokens"].items())
            if user is None or t["user"] == user
        ]


_REPAIR_HINT = ("restore it from a backup, or move it aside and add the users and their tokens again with "
                "`pypi-proxy user add` and `pypi-proxy token create`")


def _is_hash(value: object) -> bool:
    return isinstance(value, str) and value.startswith("scrypt$") and value.count("$") == 2


def _is_name(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _is_patterns(value: object) -> bool:
    """None (every project) or a list of name patterns."""
    return value is None or (isinstance(value, list) and all(isinstance(item, str) for item in value))


# The fields each record of auth.json needs, with the check of its value.
_REQUIRED: dict[str, dict[str, Callable[[object], bool]]] = {
    "users": {"password": _is_hash, "projects": _is_patterns},
    "tokens": {"user": _is_name, "hash": _is_hash, "projects": _is_patterns},
}


def _checked(data: object) -> dict[str, Any]:
    """``data`` as read from auth.json, when it has the shape every reader relies on; else
    TypeError saying what is wrong (a bad record must not surface later as a bare 500)."""
    if not isinstance(data, dict):
        raise TypeError(f"a JSON {type(data).__name__}, not an object")
    for table, required in _REQUIRED.items():
        records = data.setdefault(table, {})
        if not isinstance(records, dict):
            raise TypeError(f"{table!r} is not an object")
        for key, record in records.items():
            if not isinstance(record, dict):
                raise TypeError(f"{table}[{key!r}] is not an object")
            for name, valid in required.items():
                if not valid(record.get(name)):
                    raise TypeError(f"{table}[{key!r}] has no valid {name!r}")
    return data


def parse_basic_auth(header: str) -> tuple[str, str]:
    """User and password from an ``Authorization: Basic ...`` value (RFC 7617); ValueError if not."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise ValueError("not HTTP basic authentication")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("malformed basic credentials") from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise ValueError("malformed basic credentials")
    return user, password


def as_tuple(value: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def token_id_of(token: str) -> str | None:
    """The id part of an API token (not secret: ``token list`` shows it), None if it has none."""
    return split_token(token)[0]


def split_token(token: str) -> tuple[str | None, str]:
    if not token.startswith(TOKEN_PREFIX):
        return None, token
    rest = token[len(TOKEN_PREFIX):]
    if len(rest) <= _TOKEN_ID_LENGTH or rest[_TOKEN_ID_LENGTH] != "-":
        return None, token
    return rest[:_TOKEN_ID_LENGTH], rest[_TOKEN_ID_LENGTH + 1:]
