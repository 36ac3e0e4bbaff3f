"""Users and API tokens in the SQL database: the same methods and semantics as the filesystem's
``proxy.storage.auth.AuthStore`` (salted scrypt hashes, constant-time checks, scopes), checked by
one contract test suite against both.

Nothing is cached: every check reads the database, so a token revoked through any replica or the
CLI is refused by every replica at its next request. Every method blocks (scrypt is deliberately
slow; the database is across a network): the server calls them in its executor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, delete, exc, insert, select

from proxy.core.errors import Unauthenticated
from proxy.core.identity import Identity
from proxy.core.timestamps import iso_z, utc_now
from proxy.storage.auth import (
    TOKEN_USER,
    AuthError,
    as_tuple,
    check_new_user,
    hash_secret,
    new_token,
    normalize_patterns,
    split_token,
    verify_secret,
)
from proxy.storage.sql.engine import reading, writing
from proxy.storage.sql.schema import tokens, users


class SqlAuthStore:
    """Users and their API tokens in the database at ``engine``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def authenticate(self, username: str, password: str) -> Identity:
        """Identity for basic-auth credentials (a user's password, or ``__token__`` and an API
        token), or Unauthenticated. A wrong user costs one scrypt like a wrong password."""
        if username == TOKEN_USER:
            return self._authenticate_token(password)
        with reading(self.engine) as connection:
            user = connection.execute(select(users).where(users.c.name == username)).first()
        if not verify_secret(password, user.password if user else None) or user is None:
            raise Unauthenticated("Invalid username or password.")
        return Identity(username, None, as_tuple(user.projects), None)

    def _authenticate_token(self, token: str) -> Identity:
        token_id, secret = split_token(token)
        record = owner = None
        if token_id:
            with reading(self.engine) as connection:
                record = connection.execute(select(tokens).where(tokens.c.id == token_id)).first()
                if record is not None:
                    owner = connection.execute(select(users).where(users.c.name == record.user_name)).first()
        valid = verify_secret(secret, record.hash if record else None)
        if not valid or record is None or owner is None:
            raise Unauthenticated("Invalid or revoked API token.")
        return Identity(record.user_name, token_id, as_tuple(owner.projects), as_tuple(record.projects))

    def add_user(self, name: str, password: str, projects: Sequence[str] | None = None) -> None:
        """AuthError for an invalid name, a short password or a name that exists."""
        check_new_user(name, password)
        secret = hash_secret(password)  # slow: before the transaction, not inside it
        try:
            with writing(self.engine) as connection:
                if connection.execute(select(users.c.name).where(users.c.name == name)).first() is not None:
                    raise AuthError(f"User {name!r} already exists.")
                connection.execute(insert(users).values(
                    name=name, password=secret, projects=normalize_patterns(projects), created=utc_now()))
        except exc.IntegrityError:  # added meanwhile by another process
            raise AuthError(f"User {name!r} already exists.") from None

    def remove_user(self, name: str) -> int:
        """Remove a user and every token of theirs; return how many tokens went with them."""
        with writing(self.engine) as connection:
            removed = connection.execute(delete(tokens).where(tokens.c.user_name == name)).rowcount
            if connection.execute(delete(users).where(users.c.name == name)).rowcount == 0:
                raise AuthError(f"No user {name!r}.")
        return int(removed)

    def users(self) -> list[dict[str, Any]]:
        """Every user by name: name, projects (None: all) and created (ISO 8601); no hashes."""
        with reading(self.engine) as connection:
            found = connection.execute(select(users.c.name, users.c.projects, users.c.created)).all()
        return [{"name": row.name, "projects": row.projects, "created": iso_z(row.created)}
                for row in sorted(found, key=lambda row: row.name)]

    def create_token(self, user: str, projects: Sequence[str] | None = None, description: str = "") -> tuple[str, str]:
        """Create a token; return (token id, the token itself, shown only once). AuthError when
        there is no such user."""
        token_id, secret, token = new_token()
        hashed = hash_secret(secret)
        try:
            with writing(self.engine) as connection:
                if connection.execute(select(users.c.name).where(users.c.name == user)).first() is None:
                    raise AuthError(f"No user {user!r}.")
                connection.execute(insert(tokens).values(
                    id=token_id, user_name=user, hash=hashed, projects=normalize_patterns(projects),
                    description=description, created=utc_now()))
        except exc.IntegrityError:  # the user was removed meanwhile
            raise AuthError(f"No user {user!r}.") from None
        return token_id, token

    def revoke_token(self, token_id: str) -> None:
        """Delete the token: refused from the next request on. AuthError when there is none."""
        with writing(self.engine) as connection:
            if connection.execute(delete(tokens).where(tokens.c.id == token_id)).rowcount == 0:
                raise AuthError(f"No token {token_id!r}.")

    def tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        """Tokens by id (of ``user`` only, when given): id, user, projects, description,
        created; never their hashes."""
        query = select(tokens.c.id, tokens.c.user_name, tokens.c.projects, tokens.c.description, tokens.c.created)
        if user is not None:
            query = query.where(tokens.c.user_name == user)
        with reading(self.engine) as connection:
            found = connection.execute(query).all()
        return [{"id": row.id, "user": row.user_name, "projects": row.projects, "description": row.description,
                 "created": iso_z(row.created)} for row in sorted(found, key=lambda row: row.id)]
