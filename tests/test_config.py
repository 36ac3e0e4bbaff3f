"""Settings: embedded defaults, TOML, overrides, and errors that name the key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from proxy.config import Settings, load_settings, settings_from_mapping
from proxy.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_embedded_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = load_settings()
    assert (settings.server.host, settings.server.port, settings.server.public_url) == ("127.0.0.1", 8080, None)
    assert settings.upload.max_file_size == 100 * 1024**2
    assert settings.data_dir == tmp_path / "pypi-proxy"


def test_state_directory_wins_under_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/pypi-proxy:/var/lib/other")
    assert load_settings().data_dir == Path("/var/lib/pypi-proxy")


def test_file_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[storage]\ndata_dir = "/srv/p"\n')
    settings = load_settings(config, {"server.port": 9100, "server.host": None})
    assert (settings.server.host, settings.server.port, settings.data_dir) == ("0.0.0.0", 9100, Path("/srv/p"))


@pytest.mark.parametrize(("document", "key"), [
    ({"server": {"prot": 1}}, "server.prot"),
    ({"sever": {}}, "sever"),
    ({"server": {"port": "8080"}}, "server.port"),
    ({"server": {"port": 70000}}, "server.port"),
    ({"server": {"port": True}}, "server.port"),
    ({"server": {"public_url": "ftp://x"}}, "server.public_url"),
    ({"upload": {"max_file_size": "lots"}}, "upload.max_file_size"),
    ({"upload": {"max_file_size": 0}}, "upload.max_file_size"),
    ({"logging": {"level": "loud"}}, "logging.level"),
    ({"server": 3}, "server"),
])
def test_errors_name_the_key(document: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(document)  # type: ignore[arg-type]
    assert error.value.key == key
    assert repr(key) in str(error.value)


@pytest.mark.parametrize(("value", "size"), [
    (1024, 1024), ("100 MiB", 100 * 1024**2), ("2GB", 2 * 1000**3), ("512k", 512_000), ("7", 7), ("1 GiB", 1024**3),
])
def test_sizes(value: object, size: int) -> None:
    assert settings_from_mapping({"upload": {"max_file_size": value}}).upload.max_file_size == size


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_example_config_documents_every_key_with_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """config.example.toml lists every key, and each value there is the embedded default."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    document = tomllib.loads((ROOT / "config.example.toml").read_text())
    defaults = Settings()
    for section in ("server", "storage", "upload", "logging"):
        documented = set(document[section])
        known = set(getattr(defaults, section).__dataclass_fields__)
        assert documented == known, f"[{section}] in config.example.toml"
    assert load_settings(ROOT / "config.example.toml") == load_settings()
