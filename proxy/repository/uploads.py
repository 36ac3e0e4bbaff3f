"""Uploads through the legacy API: stage the body while hashing, validate as PyPI does, commit."""

from __future__ import annotations

import asyncio
import errno
import hashlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any, Protocol, TypeVar

import structlog

from proxy.config import UploadSettings
from proxy.core.errors import (
    Forbidden,
    InvalidName,
    StorageFull,
    Unauthenticated,
    UploadRejected,
)
from proxy.core.identity import Identity
from proxy.core.metadata import check_metadata_identity, read_core_metadata, release_info
from proxy.core.models import ReleaseInfo, StoredFile
from proxy.core.names import SDIST, WHEEL, parse_dist_filename, parse_version, validate_project_name
from proxy.core.ratelimit import LoginLimiter
from proxy.core.timestamps import utc_now
from proxy.repository.upload_form import UploadForm
from proxy.storage.atomic import sweep_temp_files
from proxy.storage.auth import TOKEN_USER, parse_basic_auth, token_id_of
from proxy.storage.distributions import extract_metadata
from proxy.storage.staging import StagedFile
from proxy.storage.stores import Authenticator, PrivateStore

T = TypeVar("T")
log = structlog.get_logger(__name__)
_FILETYPES = {WHEEL, SDIST}
_DIGEST_FIELDS = {"md5_digest": "md5", "sha256_digest": "sha256", "blake2_256_digest": "blake2_256"}


class PublicNames(Protocol):
    """Who serves a name: upstream, or a private project here (the catalog answers)."""

    async def served_upstream(self, name: str) -> bool: ...

    async def is_private(self, name: str) -> bool: ...

    async def private_changed(self) -> None:
        """After a commit: this process answers with it from then on (read your own writes)."""


class UploadService:
    """Uploads: ``executor`` runs file I/O; ``auth_executor``, a pool of its own, the deliberately
    slow scrypt checks, so that a burst of bad passwords cannot starve file and page I/O;
    ``limiter`` refuses guessing before scrypt runs; ``public`` says which names upstream
    serves (None: no name is served upstream)."""

    def __init__(self, storage: PrivateStore, auth: Authenticator, executor: Executor, settings: UploadSettings,
                 auth_executor: Executor, public: PublicNames | None = None,
                 max_description_size: int | None = None) -> None:
        self.storage = storage
        self.auth = auth
        self.executor = executor
        self.auth_executor = auth_executor
        self.settings = settings
        self.max_file_size = settings.max_file_size
        self.public = public
        self.limiter = LoginLimiter(settings.failed_logins_per_address, settings.failed_logins_per_user)
        self.max_description_size = max_description_size  # UTF-8 bytes; None: no limit

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, func, *args)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                log.error("storage_full", error=str(exc))
                raise StorageFull("The server's storage is full; nothing was stored. Try again later.") from exc
            raise

    async def authenticate(self, authorization: str | None, address: str | None = None) -> Identity:
        """The uploader, from HTTP basic credentials; Unauthenticated, or TooManyAttempts (without
        checking the credentials) when ``address`` or the user name failed too often lately."""
        if not authorization:
            raise Unauthenticated("Authentication required to upload.")
        try:
            user, password = parse_basic_auth(authorization)
        except ValueError:
            raise Unauthenticated("Malformed Authorization header: HTTP basic auth expected.") from None
        subject = user if user != TOKEN_USER else (f"{TOKEN_USER}:{token_id_of(password)}"
                                                   if token_id_of(password) else None)
        attempt = await self.limiter.acquire(address, subject)
        loop = asyncio.get_running_loop()
        try:
            identity = await loop.run_in_executor(self.auth_executor, self.auth.authenticate, user, password)
        except Unauthenticated:
            self.limiter.failed(attempt)
            log.warning("login_failed", user=user, address=address)
            raise
        except asyncio.CancelledError:  # given up while the check ran: it was paid for all the same
            self.limiter.failed(attempt)
            raise
        except BaseException:  # not the client's failure (a damaged auth.json)
            self.limiter.succeeded(attempt)
            raise
        self.limiter.succeeded(attempt)
        return identity

    def new_staged_file(self) -> StagedFile:
        return StagedFile(self.storage.new_temp_path(), self.max_file_size)

    async def write_chunk(self, staged: StagedFile, chunk: bytes) -> None:
        await self._run(staged.write, chunk)

    async def discard(self, staged: StagedFile) -> None:
        await self._run(staged.discard)

    async def sweep_staged(self) -> int:
        """Remove staged uploads idle for longer than ``staged_max_age``; how many were removed."""
        return await self._run(sweep_temp_files, self.storage.temp_dir, self.settings.staged_max_age)

    async def authorize(self, identity: Identity, form: UploadForm, name: str) -> str:
        """The normalised project ``name``, once ``identity`` may upload to it: Forbidden when its
        scope does not allow it, or when it would make private a name upstream serves without the
        explicit grant ``claim_public_names = "grant"`` requires. Checked as soon as the name
        field arrives, before the file is read, and remembered in ``form``."""
        project = _validated_name(name)
        if form.authorized == project:
            return project
        identity.require_upload(project)
        if self.settings.claim_public_names == "grant" and self.public is not None \
                and not identity.grants_explicitly(project):
            # Once private, the name is the uploaders' already (asked of the private component:
            # one stat, or the shared mode's names in memory).
            if not await self.public.is_private(project) and await self.public.served_upstream(project):
                log.warning("claim_refused", project=project, user=identity.user, token=identity.token_id)
                raise Forbidden(
                    f"Upstream serves a project named {project!r}: making it private would hide it from every "
                    f"user of this index, so the {identity.who} needs an explicit grant for it (a user or token "
                    f"created with --project {project}), not a pattern; see [upload] claim_public_names."
                )
        form.authorized = project
        return project

    async def upload(self, identity: Identity, form: UploadForm) -> bool:
        """Validate and store; True when stored, False when the identical file was already there."""
        staged = form.staged
        try:
            action = form.require(":action")
            if action != "file_upload":
                raise UploadRejected(f"Unsupported :action {action!r}: only file_upload is supported.")
            project = await self.authorize(identity, form, form.require("name"))
            version = _validated_version(form.require("version"))
            if staged is None or not form.filename:
                raise UploadRejected("Missing required field 'content' (the file, with its filename).")
            await self._run(staged.finish)
            stored, display_name = self._check_form(identity, form, project, version, staged)
            metadata = await self._run(extract_metadata, staged.path, stored.packagetype, True)
            info = await self._run(_release_info, metadata, stored, project, version, self.max_description_size)
            stored = _with_metadata(stored, metadata, info.requires_python)
            created = await self._run(
                self.storage.commit_file, staged.path, stored, metadata, info, display_name, project
            )
        finally:
            if staged is not None:
                await self._run(staged.discard)  # no-op after a successful move
        if created and self.public is not None:
            await self.public.private_changed()
        log.info("upload_stored" if created else "upload_identical", project=project,
                 filename=stored.filename, size=stored.size, user=identity.user, token=identity.token_id)
        return created

    def _check_form(
        self, identity: Identity, form: UploadForm, project: str, version: str, staged: StagedFile
    ) -> tuple[StoredFile, str]:
        filetype = form.require("filetype")
        if filetype not in _FILETYPES:
            raise UploadRejected(f"Invalid value for filetype {filetype!r}: use bdist_wheel or sdist.")
        assert form.filename is not None
        try:
            parsed = parse_dist_filename(form.filename)
        except InvalidName as exc:
            raise UploadRejected(str(exc)) from None
        if parsed.project != project:
            raise UploadRejected(
                f"Start filename for {project!r} with the normalised project name: {form.filename!r} does not."
            )
        if parsed.version != parse_version(version):
            raise UploadRejected(f"Version in filename {form.filename!r} should be {version!r}.")
        if parsed.packagetype != filetype:
            raise UploadRejected(f"Invalid file extension for filetype {filetype!r}: {form.filename!r}.")
        if staged.size == 0:
            raise UploadRejected("Invalid distribution file: it is empty.")
        digests = staged.digests()
        given = {key: form.get(field_name) for field_name, key in _DIGEST_FIELDS.items()}
        given = {key: value.strip().lower() for key, value in given.items() if value and value.strip()}
        if not given:
            raise UploadRejected("Include at least one message digest (sha256_digest).")
        for key, value in given.items():
            if digests[key] != value:
                raise UploadRejected(
                    f"The digest supplied does not match a digest calculated from the uploaded file ({key})."
                )
        stored = StoredFile(
            filename=form.filename,
            version=version,
            packagetype=filetype,
            python_version=form.get("pyversion") or parsed.python_tag,
            size=staged.size,
            sha256=digests["sha256"],
            md5=digests["md5"],
            blake2_256=digests["blake2_256"],
            upload_time=utc_now(),
            uploader=identity.user,
        )
        return stored, form.require("name")


def _validated_name(name: str) -> str:
    try:
        return validate_project_name(name.strip())
    except InvalidName as exc:
        raise UploadRejected(str(exc)) from None


def _validated_version(version: str) -> str:
    try:
        parse_version(version)
    except InvalidName as exc:
        raise UploadRejected(str(exc)) from None
    return version


def _release_info(metadata: bytes, stored: StoredFile, project: str, version: str,
                  max_description: int | None) -> ReleaseInfo:
    """Validate the archive's core metadata and read the release's ``info`` from it. CPU-bound
    for a large METADATA (up to 16 MiB): run in the executor."""
    core = read_core_metadata(metadata, stored.packagetype)
    check_metadata_identity(core, project, version)
    info = release_info(core, stored.version)
    size = len(info.description.encode("utf-8"))
    if max_description is not None and size > max_description:  # warehouse has no such cap: see config
        raise UploadRejected(f"Description too large: {size} bytes (UTF-8). "
                             f"Limit for this server is {max_description} bytes.")
    return info


def _with_metadata(stored: StoredFile, metadata: bytes, requires_python: str | None) -> StoredFile:
    return replace(stored, metadata_sha256=hashlib.sha256(metadata).hexdigest(), requires_python=requires_python)
