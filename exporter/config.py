"""The YAML configuration: strict pydantic models, secrets from files or environment."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from exporter.catalog.config import CatalogConfig
from exporter.core.settings import (
    Duration,
    Strict,
    readable,
)
from exporter.exposition.sla import SlaConfig, unknown_catalogs
from exporter.tickets.config import BridgeKeys, bridge_problems


class TLSConfig(Strict):
    """HTTPS for the exporter's own server."""

    cert_file: Path
    key_file: Path

    _files = field_validator("cert_file", "key_file")(readable)


class Config(BridgeKeys):
    """The whole configuration file (the ticket bridge's keys come from BridgeKeys)."""

    listen: str = "127.0.0.1:9625"
    poll_interval: Duration = 30.0
    scrape_min_interval: Duration = 5.0  # a scrape polls first when the last poll is older
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    tls: TLSConfig | None = None
    sla: SlaConfig = SlaConfig()
    catalogs: list[CatalogConfig] = Field(min_length=1)

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, listen: str) -> str:
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("listen must be host:port, e.g. 127.0.0.1:9625")
        return listen

    @model_validator(mode="after")
    def _unique_names(self) -> "Config":
        seen: set[str] = set()
        for catalog in self.catalogs:
            if catalog.name in seen:
                raise ValueError(f"catalog name {catalog.name!r} is used twice")
            seen.add(catalog.name)
        return self

    @property
    def host(self) -> str:
        """Return the address to listen on."""
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        """Return the port to listen on."""
        return int(self.listen.rpartition(":")[2])


class ConfigError(Exception):
    """A configuration file that cannot be used; `problems` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


def _problems(error: ValidationError) -> Iterator[str]:
    """Turn pydantic errors into 'key.path: message' lines that never echo the input value."""
    for err in error.errors(include_input=False, include_url=False):
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        yield f"{path}: {message}"


def parse_config(data: Any, source: str = "config") -> Config:
    """Validate already-parsed YAML data."""
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping of keys"])
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, list(_problems(exc))) from None
    # Cross-references: a policy must name catalogs that exist.
    problems = unknown_catalogs(config.sla, [c.name for c in config.catalogs])
    problems += bridge_problems(config.state_dir, config.state_database, config.sinks,
                                config.alertmanager)
    if problems:
        raise ConfigError(source, problems)
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML configuration file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        raise ConfigError(str(path), [f"{where}: {getattr(exc, 'problem', exc)}"]) from None
    return parse_config(data, str(path))
