"""The ``pypi-proxy`` command: serve, and manage users, tokens and private releases."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from proxy import __version__
from proxy.config import Settings, load_settings
from proxy.core.errors import ConfigError, NeedsTerminal, ProxyError
from proxy.ops import admin, frontconfig
from proxy.oserrors import explain_os_error
from proxy.storage.backends import shared_mode
from proxy.storage.datadir import check_data_dir
from proxy.warm import audit, explaincli
from proxy.warm import cli as warmcli

# (The docstring above is the --help description.) Here: the arguments, the settings and the exit
# statuses; serving is proxy.ops.server's, the administrative commands proxy.ops.admin's.


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML config file (default: $PYPI_PROXY_CONFIG, else built-in defaults)")
    parser.add_argument("--data-dir", type=Path, default=None, help="override storage.data_dir")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pypi-proxy", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server")
    _common(serve)
    serve.add_argument("--host", default=None, help="override server.host")
    serve.add_argument("--port", type=int, default=None, help="override server.port")
    serve.add_argument("--workers", type=int, default=None, metavar="N",
                       help="override server.workers (server processes; 0: one per CPU)")
    upstream = serve.add_mutually_exclusive_group()
    upstream.add_argument("--upstream", default=None, metavar="URL",
                          help="override upstream.url (a simple index, e.g. https://pypi.org/simple)")
    upstream.add_argument("--no-upstream", action="store_true",
                          help="serve private packages only (upstream.enabled = false)")

    user = commands.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    add = user.add_parser("add", help="create a user (password prompted)")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--project", action="append", dest="projects", metavar="PATTERN",
                     help="restrict uploads to matching projects (repeatable, e.g. 'acme-*')")
    _common(add)
    _common(user.add_parser("list", help="list users"))
    remove_user = user.add_parser("remove", help="remove a user and all their tokens")
    remove_user.add_argument("name")
    _common(remove_user)

    token = commands.add_parser("token", help="manage API tokens").add_subparsers(dest="action", required=True)
    create = token.add_parser("create", help="create a token for a user; it is printed once")
    create.add_argument("user")
    create.add_argument("--project", action="append", dest="projects", metavar="NAME",
                        help="scope the token to a project or pattern (repeatable)")
    create.add_argument("--description", default="")
    _common(create)
    listing = token.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--user", default=None)
    _common(listing)
    revoke = token.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id")
    _common(revoke)

    for verb, text in (("yank", "mark a private release or file yanked (PEP 592)"),
                       ("unyank", "undo a yank")):
        sub = commands.add_parser(verb, help=text)
        sub.add_argument("project")
        sub.add_argument("version")
        sub.add_argument("--file", dest="filename", default=None, help="only this file of the release")
        if verb == "yank":
            sub.add_argument("--reason", default="", help="shown to installers")
        _common(sub)
    remove = commands.add_parser("remove", help="delete a private release or file for good")
    remove.add_argument("project")
    remove.add_argument("version")
    remove.add_argument("--file", dest="filename", default=None, help="only this file of the release")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _common(remove)

    release = commands.add_parser(
        "release-name", help="make a private name public again: upstream's project is served from then on")
    release.add_argument("project")
    release.add_argument("--force", action="store_true", help="delete the project's files with it (asks first)")
    release.add_argument("--yes", action="store_true", help="with --force: do not ask for confirmation")
    _common(release)

    cache = commands.add_parser("cache", help="cached public files").add_subparsers(dest="action", required=True)
    _common(cache.add_parser("stats", help="sizes of private storage and of the caches"))
    prune = cache.add_parser("prune", help="evict least recently used cached files beyond a size")
    prune.add_argument("--max-size", default=None, metavar="SIZE",
                       help='e.g. "50 GiB" (default: [cache] files_max_size; files of now-private projects always go)')
    _common(prune)
    check = commands.add_parser("check", help="re-hash every stored file; exit 1 on any problem")
    check.add_argument("--repair", action="store_true",
                       help="move bad cached files to cache/quarantine so they are fetched again, and private "
                            "files no index lists to private-quarantine (listed private files are only reported); "
                            "in the shared mode, delete unlisted blobs older than the upload grace period")
    check.add_argument("--deep", action="store_true",
                       help="shared mode: also read every blob back and compare its sha256 (the embedded check "
                            "always does)")
    _common(check)
    front = commands.add_parser("front-config", help="print a front server's configuration made from the settings")
    front.add_argument("server", choices=["nginx"], help="the front server")
    front.add_argument("--listen", default="80", metavar="ADDRESS", help="nginx's listen (default: 80)")
    front.add_argument("--server-name", default="_", metavar="NAME", help="nginx's server_name (default: _)")
    _common(front)
    migrate = commands.add_parser("migrate", help="copy this install's private projects, users and tokens into "
                                  "the shared backend (database and object store) of another config")
    migrate.add_argument("--to", type=Path, required=True, metavar="CONFIG",
                         help="the target's config file ([storage] database and objects; `db upgrade` it first)")
    _common(migrate)
    database = commands.add_parser("db", help="the metadata database ([storage] database)").add_subparsers(
        dest="action", required=True)
    for action, text in (("upgrade", "create or upgrade its schema (run after installing a new version)"),
                         ("current", "print its schema revision; exit 1 when it needs `db upgrade`")):
        sub = database.add_parser(action, help=text)
        sub.add_argument("--database", default=None, metavar="URL", help="override storage.database")
        _common(sub)
    warmcli.register(commands)
    explaincli.register(commands)
    audit.register(commands)
    return parser


CONFIG_ENV = "PYPI_PROXY_CONFIG"
# Commands that write to the data directory (checked writable first); "user add" also creates it.
_WRITERS = {("user", "add"), ("user", "remove"), ("token", "create"), ("token", "revoke"), ("yank", None),
            ("unyank", None), ("remove", None), ("cache", "prune"), ("release-name", None)}

# Commands that work on the database and object store alone in the shared mode (no data directory).
_SHARED = {"user", "token", "yank", "unyank", "remove", "release-name", "check"}


def _settings(args: argparse.Namespace) -> Settings:
    config, source = args.config, "--config"
    if config is None and os.environ.get(CONFIG_ENV):
        config, source = Path(os.environ[CONFIG_ENV]), f"${CONFIG_ENV}"
    overrides: dict[str, Any] = {"storage.data_dir": str(args.data_dir) if args.data_dir else None}
    if args.command == "db":
        overrides["storage.database"] = args.database
    if args.command == "serve":
        overrides |= {"server.host": args.host, "server.port": args.port, "server.workers": args.workers,
                      "upstream.url": args.upstream,
                      "upstream.enabled": False if args.no_upstream else None}
    return load_settings(config, overrides, source)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; its exit status. Ordinary mistakes end in one line on stderr, never a
    traceback: 2 for usage and configuration, 1 for a failed operation, 130 for Ctrl-C."""
    try:
        code = _run(build_parser().parse_args(argv))
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except KeyboardInterrupt:
        return _fail("interrupted", 130, newline=True)
    except BrokenPipeError:  # the reader of stdout went away (e.g. `| head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # the shell's status for a command killed by SIGPIPE


def _run(args: argparse.Namespace) -> int:
    if args.command in ("warm", "audit", "policy"):  # HTTP clients of a server: no settings of their own
        return int(args.handler(args))
    try:
        settings = _settings(args)
        if args.command == "serve":
            from proxy.ops.server import serve

            serve(settings)
            return 0
        if args.command == "db":  # the database only: no data directory needed
            from proxy.ops import database  # SQLAlchemy and Alembic load only for this command

            return database.db(args, settings)
        if args.command == "front-config":  # reads nothing of the data directory
            print(frontconfig.nginx(settings, args.listen, args.server_name), end="")
            if settings.server.front_server != args.server:
                print(f'pypi-proxy: note: set [server] front_server = "{args.server}" in the proxy\'s config '
                      "for this front server to be used", file=sys.stderr)
            return 0
        action = getattr(args, "action", None)
        writes = (args.command, action) in _WRITERS or (args.command == "check" and args.repair)
        if args.command not in _SHARED or not shared_mode(settings.storage):  # shared: in the database
            check_data_dir(settings.data_dir, create=(args.command, action) == ("user", "add"), write=writes)
        return admin.COMMANDS[args.command](args, settings)
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}", 2)
    except NeedsTerminal as exc:
        return _fail(str(exc), 2)
    except ProxyError as exc:
        return _fail(str(exc), 1)
    except BrokenPipeError:
        raise
    except OSError as exc:  # what the checks up front could not foresee (a disk filling up, ...)
        reason, hint = explain_os_error(exc)
        return _fail(f"{reason}; {hint}", 1)


def _fail(message: str, code: int, newline: bool = False) -> int:
    # After Ctrl-C at a prompt the cursor still stands after it.
    start = "\n" if newline and sys.stderr.isatty() else ""
    print(f"{start}pypi-proxy: {message}", file=sys.stderr)
    return code
