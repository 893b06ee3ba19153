"""Base types of the configuration: strict models, durations, names, secrets."""

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


def read_secret_file(path: Path) -> str:
    """Read a secret file, dropping one trailing newline as editors and `echo` add it."""
    return path.read_text(encoding="utf-8").removesuffix("\n")
