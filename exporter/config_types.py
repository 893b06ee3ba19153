"""Base types of the configuration: strict models, durations, names, secrets."""

import os
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from exporter.durations import parse_duration


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
