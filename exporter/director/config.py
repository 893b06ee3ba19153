"""The `directors:` entries of the configuration: one Bacula Director's console each."""

import shutil
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from exporter.core.settings import (
    Duration,
    Name,
    Secret,
    Strict,
    env_set,
    read_secret,
    readable,
)

# Characters bconsole.conf cannot carry inside a quoted value without surprises.
UNQUOTABLE = ('"', "\\", "\n", "\r")


class ConsoleTLS(Strict):
    """TLS towards the Director: the CA that signed it, and our client certificate if asked."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    _files = field_validator("ca_file", "cert_file", "key_file")(readable)

    @model_validator(mode="after")
    def _pair(self) -> "ConsoleTLS":
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give cert_file and key_file together")
        return self


class DirectorConfig(Strict):
    """One Director, reached through bconsole; its jobs join the series of `catalog`."""

    name: Name
    catalog: Name  # the catalog this Director writes
    address: str
    port: int = Field(default=9101, gt=0, lt=65536)
    # A named, restricted Console (docs/director.md lists the commands it needs); else the
    # Director's own password (full access).
    console_name: Name | None = None
    password_file: Path | None = None
    password_env: str | None = None
    tls: ConsoleTLS | None = None
    timeout: Duration = 10.0  # a bconsole run that takes longer is killed
    poll_interval: Duration = 60.0
    schedule_grace: Duration = 300.0  # how late a scheduled job may start before it is missed
    storages: list[Name] | None = None  # which Storage resources to ask; None: all of them
    bconsole: str = "bconsole"  # a path, or a name looked up on PATH

    @field_validator("address")
    @classmethod
    def _check_address(cls, address: str) -> str:
        if not address or any(c in address for c in (*UNQUOTABLE, " ", "{", "}", ";")):
            raise ValueError("address must be a host name or IP address")
        return address

    @field_validator("bconsole")
    @classmethod
    def _check_bconsole(cls, program: str) -> str:
        found = shutil.which(program)
        if found is None:
            raise ValueError(
                f"bconsole program {program!r} not found or not executable (install Debian's "
                "bacula-console package, or give its path)")
        return found

    @field_validator("timeout", "poll_interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0")
        return value

    _file = field_validator("password_file")(readable)
    _env = field_validator("password_env")(env_set)

    @model_validator(mode="after")
    def _one_password_source(self) -> "DirectorConfig":
        if (self.password_file is None) == (self.password_env is None):
            raise ValueError("give password_file or password_env (one of them)")
        return self

    def password(self) -> Secret:
        """Read the console password now, so a rotated secret file is picked up."""
        secret = read_secret(self.password_file, self.password_env)
        assert secret is not None  # the validator demands one source
        if any(c in secret.get() for c in UNQUOTABLE):
            raise ValueError("the console password holds a quote, backslash or line break, "
                             "which bconsole.conf cannot carry")
        return secret


def director_problems(directors: list[DirectorConfig], catalogs: list[str]) -> list[str]:
    """Cross-checks: unique names, and each Director names a catalog that exists."""
    problems = []
    seen: set[str] = set()
    for i, director in enumerate(directors):
        if director.name in seen:
            problems.append(f"directors.{i}.name: director name {director.name!r} is used twice")
        seen.add(director.name)
        if director.catalog not in catalogs:
            problems.append(f"directors.{i}.catalog: no catalog named {director.catalog!r}")
    return problems
