"""Settings: defaults < TOML file < PASSPORT_* environment < flags, each checked once."""

from __future__ import annotations

from pathlib import Path

import pytest

from passport.config import FIELDS
from passport.config import ConfigError
from passport.config import describe
from passport.config import load_settings


def test_precedence(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text('[passport]\nport = 9000\nworkers = 2\nhost = "0.0.0.0"\n')
    settings = load_settings(
        config_file=toml,
        environ={"PASSPORT_WORKERS": "3", "PASSPORT_PORT": "9100"},
        overrides={"port": 9200},
    )
    assert (settings.host, settings.workers, settings.port) == ("0.0.0.0", 3, 9200)


def test_defaults_are_safe() -> None:
    settings = load_settings(environ={})
    assert settings.database_url == "sqlite:///passport.sqlite3"
    assert settings.password_min_length == 12
    assert settings.argon2_memory_kib >= 19456 and settings.argon2_time_cost >= 2
    assert settings.session_idle_timeout == 1800
    assert settings.session_absolute_lifetime == 43200
    assert not settings.secure_cookies


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PASSPORT_PORT": "0"}, "port must be between 1 and 65535"),
        ({"PASSPORT_WORKERS": "many"}, "setting workers: 'many' is not a valid int"),
        ({"PASSPORT_REGISTRATION_ENABLED": "perhaps"}, "is not a valid bool"),
        ({"PASSPORT_PUBLIC_URL": "ftp://x"}, "public_url must start with"),
        ({"PASSPORT_REDIS_URL": "http://x"}, "redis_url must start with"),
        ({"PASSPORT_PASSWORD_MIN_LENGTH": "4"}, "password_min_length must be at least 8"),
        ({"PASSPORT_DATABASE_URL": ""}, "database_url must not be empty"),
        ({"PASSPORT_KEY_ENCRYPTION_KEY": "short"}, "key_encryption_key must be 32 random"),
        ({"PASSPORT_KEY_ENCRYPTION_KEY": "A" * 44 + "!"}, "key_encryption_key must be 32"),
    ],
)
def test_bad_values_are_one_clear_line(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ=environ)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_secret_values_are_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={}, overrides={"database_url": ["pw-secret"]})
    assert "pw-secret" not in str(raised.value)
    with pytest.raises(ConfigError) as bad_key:
        load_settings(environ={"PASSPORT_KEY_ENCRYPTION_KEY": "kek-secret-value"})
    assert "kek-secret-value" not in str(bad_key.value)


def test_toml_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("port = = 1")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(config_file=bad, environ={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[passport]\nportt = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'portt'"):
        load_settings(config_file=unknown, environ={})


def test_every_setting_is_documented_in_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    missing = [name for name in FIELDS if f"PASSPORT_{name.upper()}" not in readme]
    assert missing == []


def test_describe_masks_secrets() -> None:
    settings = load_settings(environ={"PASSPORT_DATABASE_URL": "mysql+pymysql://u:pw123@h/db"})
    shown = dict((name, value) for name, value, _ in describe(settings))
    assert shown["database_url"] == "mysql+pymysql://u:***@h/db"
