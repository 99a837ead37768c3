"""Shared CLI pieces: the settings options and clear one-line failures."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any
from typing import NoReturn
from typing import TypeVar

import click
import sqlalchemy.exc

from passport.config import Settings
from passport.config import load_settings
from passport.storage.db import Database

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"passport: {message}", err=True)
    sys.exit(code)


def settings_options(func: F) -> F:
    """``--config`` and ``--database-url``, accepted by every command that needs settings."""
    func = click.option(
        "--database-url",
        envvar=None,
        help="Database URL (overrides PASSPORT_DATABASE_URL and the config file).",
    )(func)
    func = click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        help="TOML settings file (default: $PASSPORT_CONFIG).",
    )(func)
    return func


def settings_from(config_file: str | None, **overrides: Any) -> Settings:
    return load_settings(config_file=config_file, overrides=overrides)


def open_database(settings: Settings) -> Database:
    try:
        return Database(settings)
    except (ValueError, sqlalchemy.exc.ArgumentError) as exc:
        fail(f"cannot use database_url: {exc}")


def database_unreachable(exc: Exception) -> NoReturn:
    fail(f"cannot reach the database ({type(exc).__name__}); is it running and is the URL right?")
