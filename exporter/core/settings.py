"""Base types of the configuration: strict models, durations, names, secrets, databases."""

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from exporter.core.durations import parse_duration


def check_zone(zone: str) -> str:
    """Accept an IANA time zone name such as Europe/Berlin."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {zone!r}; use an IANA name such as Europe/Berlin"
        ) from None
    return zone


Duration = Annotated[float, BeforeValidator(parse_duration)]
Zone = Annotated[str, AfterValidator(check_zone)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


def problem_lines(error: ValidationError) -> list[str]:
    """Turn pydantic errors into 'key.path: message' lines that never echo the input value."""
    return [
        f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: "
        f"{e['msg'].removeprefix('Value error, ')}"
        for e in error.errors(include_input=False, include_url=False)
    ]


class Secret:
    """A secret value that never shows itself in logs, reprs or error messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """Return the secret itself, for the one place that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def readable(path: Path | None) -> Path | None:
    """Fail at config time, not at first use, when a (secret) file cannot be read."""
    if path is not None and not os.access(path, os.R_OK):
        raise ValueError(f"cannot read {path}")
    return path


def env_set(name: str | None) -> str | None:
    """Fail at config time when a secret's environment variable is not set."""
    if name is not None and name not in os.environ:
        raise ValueError(f"environment variable {name} is not set")
    return name


def read_secret(path: Path | None, env: str | None) -> Secret | None:
    """Read a secret now, so a rotated file is picked up; one trailing newline is dropped."""
    if path is not None:
        return Secret(path.read_text(encoding="utf-8").removesuffix("\n"))
    if env is not None:
        return Secret(os.environ.get(env, ""))
    return None


class DatabaseConfig(Strict):
    """A database server: its url, where its password comes from, and time limits."""

    url: str
    password_file: Path | None = None
    password_env: str | None = None
    statement_timeout: Duration = 10.0
    connect_timeout: Duration = 5.0

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("sqlite", "postgresql", "postgres", "mysql", "mariadb"):
            raise ValueError("scheme must be sqlite, postgresql or mysql")
        if parts.password:
            raise ValueError("put the password in password_file or password_env, not in the url")
        if parts.scheme == "sqlite" and len(parts.path) < 2:
            raise ValueError("a sqlite url needs a file path: sqlite:////abs/path/bacula.db")
        if parts.scheme != "sqlite" and not (parts.hostname and parts.path.strip("/")):
            raise ValueError("the url needs a host and a database name")
        return url

    _file = field_validator("password_file")(readable)
    _env = field_validator("password_env")(env_set)

    @model_validator(mode="after")
    def _one_password_source(self) -> "DatabaseConfig":
        if self.password_file and self.password_env:
            raise ValueError("give password_file or password_env, not both")
        return self

    @property
    def engine(self) -> Literal["sqlite", "postgresql", "mysql"]:
        """Return the engine family of the url."""
        scheme = urlsplit(self.url).scheme
        if scheme == "sqlite":
            return "sqlite"
        return "postgresql" if scheme.startswith("postgres") else "mysql"

    def sqlite_path(self) -> str:
        """Return the file of a sqlite url (sqlite:////abs/file.db or sqlite:///relative.db)."""
        return unquote(urlsplit(self.url).path[1:])

    def password(self) -> Secret | None:
        """Read the password now, so a rotated secret file is picked up on reconnect."""
        return read_secret(self.password_file, self.password_env)


class StateDatabaseConfig(DatabaseConfig):
    """The PostgreSQL database that replicas share: the outbox, checkpoints and leadership."""

    @field_validator("url")
    @classmethod
    def _postgresql_only(cls, url: str) -> str:
        if not urlsplit(url).scheme.startswith("postgres"):
            raise ValueError("the state database must be PostgreSQL (postgresql://...)")
        return url
