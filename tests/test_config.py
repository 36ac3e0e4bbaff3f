"""Settings: embedded defaults, a TOML file, overrides, and errors that name the key."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from proxy.config import Settings, default_data_dir, load_settings, section_keys, settings_from_mapping
from proxy.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No test sees the developer's or the CI's data directory variables."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load_settings()
    assert (settings.server.host, settings.server.port, settings.server.public_url) == ("127.0.0.1", 8080, None)
    assert settings.upload.max_file_size == 100 * 1024**2
    assert (settings.logging.level, settings.logging.format) == ("info", "auto")
    assert settings.data_dir == tmp_path / "home" / ".local" / "share" / "pypi-proxy"


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_settings(write_config(tmp_path, "")) == load_settings()


def test_file_overrides_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, """
[server]
host = "0.0.0.0"
port = 9000
public_url = "https://pypi.example.com/"

[storage]
data_dir = "/srv/pypi-proxy"

[upload]
max_file_size = "2GB"

[logging]
level = "debug"
format = "json"
""")
    settings = load_settings(path)
    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == 9000
    assert settings.server.public_url == "https://pypi.example.com"  # trailing slash dropped
    assert settings.data_dir == Path("/srv/pypi-proxy")
    assert settings.upload.max_file_size == 2 * 1000**3
    assert (settings.logging.level, settings.logging.format) == ("debug", "json")


@pytest.mark.parametrize(("given", "expected"), [
    (None, "<host>"), ("", "<host>"), ("eu-1", "eu-1"), ("pypi-a.internal:8080", "pypi-a.internal:8080"),
    ("a b", ConfigError), ('x"y', ConfigError), ("-a", ConfigError), ("a" * 65, ConfigError), (3, ConfigError),
])
def test_the_replica_name_defaults_to_the_host_and_is_a_label_value(given: Any, expected: Any) -> None:
    """[server] replica (issue 14): the metrics' replica label, so nothing that would need quoting."""
    import socket

    data = {"server": {"replica": given}} if given is not None else {}
    if expected is ConfigError:
        with pytest.raises(ConfigError, match="server.replica"):
            settings_from_mapping(data)
        return
    host = socket.gethostname().split(".")[0]
    assert settings_from_mapping(data).server.replica == expected.replace("<host>", host)


@pytest.mark.parametrize("loop", ["auto", "uvloop", "asyncio"])
def test_event_loop_choices(tmp_path: Path, loop: str) -> None:
    """[server] event_loop (proxy.ops.eventloop): "auto" unless set."""
    assert load_settings(None).server.event_loop == "auto"
    assert load_settings(write_config(tmp_path, f'[server]\nevent_loop = "{loop}"\n')).server.event_loop == loop


def test_front_server_settings(tmp_path: Path) -> None:
    defaults = load_settings().server
    assert (defaults.front_server, defaults.front_internal_prefix) == ("none", "/_pypi_proxy_internal/")
    settings = load_settings(write_config(tmp_path, '[server]\nfront_server = "nginx"\n'
                                                    'front_internal_prefix = "/x/pypi.files~1/"\n'))
    assert (settings.server.front_server, settings.server.front_internal_prefix) == ("nginx", "/x/pypi.files~1/")


def test_file_sets_only_what_it_names(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, "[server]\nport = 9000\n"))
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 9000)


def test_overrides_beat_the_file_and_none_means_unset(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[server]\nport = 9000\nhost = "0.0.0.0"\n[storage]\ndata_dir = "/srv/p"\n')
    settings = load_settings(path, {"server.port": 9100, "server.host": None, "storage.data_dir": "/data"})
    assert settings.server.port == 9100
    assert settings.server.host == "0.0.0.0"  # None: the flag was not given
    assert settings.data_dir == Path("/data")


def test_overrides_without_a_file() -> None:
    assert load_settings(None, {"server.port": 1234}).server.port == 1234


@pytest.mark.parametrize(("document", "key"), [
    pytest.param({"server": {"prot": 1}}, "server.prot", id="unknown-key"),
    pytest.param({"logging": {"lvl": "info"}}, "logging.lvl", id="unknown-key-other-section"),
    pytest.param({"sever": {}}, "sever", id="unknown-section"),
    pytest.param({"server": 3}, "server", id="section-not-a-table"),
    pytest.param({"server": {"port": "8080"}}, "server.port", id="port-string"),
    pytest.param({"server": {"port": 70000}}, "server.port", id="port-too-big"),
    pytest.param({"server": {"port": -1}}, "server.port", id="port-negative"),
    pytest.param({"server": {"port": True}}, "server.port", id="port-bool"),
    pytest.param({"server": {"host": 127}}, "server.host", id="host-int"),
    pytest.param({"server": {"public_url": "ftp://x"}}, "server.public_url", id="url-scheme"),
    pytest.param({"server": {"public_url": "pypi.example.com"}}, "server.public_url", id="url-relative"),
    pytest.param({"storage": {"data_dir": 5}}, "storage.data_dir", id="data-dir-int"),
    pytest.param({"upload": {"max_file_size": "lots"}}, "upload.max_file_size", id="size-word"),
    pytest.param({"upload": {"max_file_size": 0}}, "upload.max_file_size", id="size-zero"),
    pytest.param({"upload": {"max_file_size": "0 MiB"}}, "upload.max_file_size", id="size-zero-unit"),
    pytest.param({"upload": {"max_file_size": -5}}, "upload.max_file_size", id="size-negative"),
    pytest.param({"upload": {"max_file_size": 1.5}}, "upload.max_file_size", id="size-float"),
    pytest.param({"upload": {"max_file_size": "10 XB"}}, "upload.max_file_size", id="size-unit"),
    pytest.param({"logging": {"level": "loud"}}, "logging.level", id="level-choice"),
    pytest.param({"logging": {"format": "xml"}}, "logging.format", id="format-choice"),
    pytest.param({"server": {"event_loop": "trio"}}, "server.event_loop", id="event-loop-choice"),
    pytest.param({"server": {"event_loop": True}}, "server.event_loop", id="event-loop-bool"),
    pytest.param({"server": {"front_server": "apache"}}, "server.front_server", id="front-server-choice"),
    *(pytest.param({"server": {"front_internal_prefix": prefix}}, "server.front_internal_prefix",
                   id=f"front-prefix-{prefix!r}")
      for prefix in ("internal/", "/internal", "/", "/a b/", "/../", "/a/./b/", "/a?b/", "/a%2F/", 5)),
])
def test_errors_name_the_dotted_key(document: dict[str, Any], key: str) -> None:
    """Unknown sections and keys, and wrong types, are errors whose message names the key."""
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(document)
    assert error.value.key == key
    assert repr(key) in str(error.value)


def test_unknown_key_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="server.prot") as error:
        settings_from_mapping({"server": {"prot": 8080}})
    assert "port" in error.value.problem


def test_unknown_key_in_a_file_names_the_dotted_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'server\.prot'"):
        load_settings(write_config(tmp_path, "[server]\nprot = 8080\n"))


@pytest.mark.parametrize(("overrides", "key"), [
    ({"server.prot": 1}, "server.prot"),
    ({"server.port": "x"}, "server.port"),
    ({"sever.port": 1}, "sever.port"),
])
def test_bad_overrides_name_the_key(overrides: dict[str, Any], key: str) -> None:
    """Overrides (command-line flags) are validated like the file: nothing is silently ignored."""
    with pytest.raises(ConfigError) as error:
        load_settings(None, overrides)
    assert error.value.key == key


@pytest.mark.parametrize(("value", "size"), [
    (1024, 1024),
    ("100 MiB", 100 * 1024**2),
    ("2GB", 2 * 1000**3),
    ("2 gb", 2 * 1000**3),
    ("512k", 512_000),
    ("512 KiB", 512 * 1024),
    ("7", 7),
    ("7 B", 7),
    (" 1 GiB ", 1024**3),
    ("3M", 3 * 1000**2),
    ("1TiB", 1024**4),
])
def test_sizes(value: object, size: int) -> None:
    assert settings_from_mapping({"upload": {"max_file_size": value}}).upload.max_file_size == size


def test_data_dir_from_state_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Under systemd, StateDirectory= sets $STATE_DIRECTORY (colon-separated when several)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/pypi-proxy:/var/lib/other")
    assert default_data_dir() == Path("/var/lib/pypi-proxy")
    assert load_settings().data_dir == Path("/var/lib/pypi-proxy")


def test_data_dir_from_xdg_data_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert load_settings().data_dir == tmp_path / "xdg" / "pypi-proxy"


def test_data_dir_in_the_file_beats_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/pypi-proxy")
    settings = load_settings(write_config(tmp_path, '[storage]\ndata_dir = "/srv/x"\n'))
    assert settings.data_dir == Path("/srv/x")


def test_data_dir_expands_the_user(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, '[storage]\ndata_dir = "~/pkgs"\n'))
    assert settings.data_dir == tmp_path / "home" / "pkgs"


def test_environment_read_when_loading_not_at_import(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No global state: the environment is read by the loader, each time."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "one"))
    first = load_settings().data_dir
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "two"))
    assert (first, load_settings().data_dir) == (tmp_path / "one" / "pypi-proxy", tmp_path / "two" / "pypi-proxy")


def test_invalid_toml_names_the_option_and_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[server\nport = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML") as error:
        load_settings(path)
    assert error.value.key == "--config"
    assert str(path) in str(error.value)


def test_missing_file_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found") as error:
        load_settings(tmp_path / "nope.toml")
    assert error.value.key == "--config"


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(AttributeError):
        settings.server.port = 1  # type: ignore[misc]


def test_example_config_loads_and_equals_the_defaults() -> None:
    """config.example.toml documents every key, each with its default value."""
    if not EXAMPLE.exists():
        pytest.skip("config.example.toml is not at the repository root yet")
    document = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    defaults = Settings()
    for section in fields(Settings):
        documented = set(document.get(section.name, {}))
        known = set(section_keys(type(getattr(defaults, section.name))))
        assert documented == known, f"keys of [{section.name}] in config.example.toml"
    assert set(document) == {f.name for f in fields(Settings)}
    assert load_settings(EXAMPLE) == load_settings()


def test_settings_survive_the_hand_over_to_worker_processes(tmp_path: Path) -> None:
    """--workers: each worker rebuilds exactly the supervisor's settings from a JSON document."""
    import json

    from proxy.config import settings_to_mapping

    original = settings_from_mapping({
        "server": {"port": 9000, "workers": 3, "public_url": "https://pypi.example/"},
        "storage": {"data_dir": str(tmp_path)},
        "upstream": {"url": "https://mirror.example/simple/", "reserved": ["Acme_*"], "username": "u"},
        "cache": {"files_max_size": "2 GiB"},
    })
    assert settings_from_mapping(json.loads(json.dumps(settings_to_mapping(original)))) == original
    defaults = settings_from_mapping({"storage": {"data_dir": str(tmp_path)}})
    assert settings_from_mapping(json.loads(json.dumps(settings_to_mapping(defaults)))) == defaults


@pytest.mark.parametrize(("make", "problem"), [
    pytest.param(lambda p: p.mkdir(), "cannot read the config file: {p} is a directory, not a file; "
                                      "give the path of a file", id="a-directory"),
    pytest.param(lambda p: p.write_bytes(b"# caf\xe9\n"), "{p} is not UTF-8 text (byte 0xe9 at offset 5); "
                                                          "save it as UTF-8", id="latin-1"),
])
def test_an_unreadable_file_is_a_config_error_keyed_by_its_source(tmp_path: Path, make: Any, problem: str) -> None:
    """Issue 11, A4: the option or variable that named the file, and what is wrong with it."""
    path = tmp_path / "config.toml"
    make(path)
    for source in ("--config", "$PYPI_PROXY_CONFIG"):
        with pytest.raises(ConfigError) as error:
            load_settings(path, source=source)
        assert error.value.key == source
        assert str(error.value) == f"{source}: {problem.format(p=path)}"


@pytest.mark.parametrize("url", ["postgresql://pypi:secret@db.internal:5432/pypi", "postgres://db/pypi",
                                 "postgresql+psycopg://db/pypi", "sqlite:////srv/pypi.db", "sqlite:///pypi.db"])
def test_storage_database_urls(url: str) -> None:
    """Issue 14: [storage] database, with the default data directory kept beside it."""
    settings = settings_from_mapping({"storage": {"database": url, "database_pool_size": 2}})
    assert (settings.storage.database, settings.storage.database_pool_size) == (url, 2)
    assert settings.data_dir == default_data_dir()


@pytest.mark.parametrize(("value", "problem"), [
    ("mysql://u:secret@db/x", "got 'mysql://u:***@db/x'"),
    ("sqlite://", "expected postgresql://"),
    ("sqlite:///:memory:", "expected postgresql://"),
    ("db.internal", "expected postgresql://"),
    ("postgresql://", "expected postgresql://"),
    (5, "expected a string"),
])
def test_invalid_database_urls_name_the_key_without_the_password(value: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match="storage.database") as error:
        settings_from_mapping({"storage": {"database": value}})
    assert problem in str(error.value) and "secret" not in str(error.value)


def test_database_pool_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="storage.database_pool_size.*>= 1"):
        settings_from_mapping({"storage": {"database_pool_size": 0}})
    with pytest.raises(ConfigError, match="storage.database_pool_timeout"):
        settings_from_mapping({"storage": {"database_pool_timeout": 0}})
    assert settings_from_mapping({"storage": {"database_max_overflow": 0}}).storage.database_max_overflow == 0


def test_the_database_survives_the_hand_over_to_worker_processes(tmp_path: Path) -> None:
    import json

    from proxy.config import settings_to_mapping

    original = settings_from_mapping({"storage": {"data_dir": str(tmp_path), "database": "postgres://db/pypi",
                                                  "database_pool_timeout": 2.5}})
    assert settings_from_mapping(json.loads(json.dumps(settings_to_mapping(original)))) == original
