"""The YAML configuration: strict pydantic models, secrets from files or environment."""

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from exporter.catalog.config import CatalogConfig
from exporter.core.settings import Duration, Strict, problem_lines, readable
from exporter.core.webconfig import TLSServerConfig, WebConfig, load_web_config
from exporter.director.config import DirectorConfig, director_problems
from exporter.exposition.sla import SlaConfig, unknown_catalogs
from exporter.tickets.config import BridgeKeys, bridge_problems

PublicPath = Literal["healthz", "readyz"]
DEFAULT_PUBLIC: tuple[PublicPath, ...] = ("healthz",)


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
    tls: TLSConfig | None = None  # the short form of web_config_file's tls_server_config
    # Access control in exporter-toolkit's format (--web.config.file): TLS, mTLS, basic auth.
    web_config_file: Path | None = None
    # What answers without credentials when basic_auth_users are set: liveness always by
    # default; /readyz too for Kubernetes probes (then without the catalogs' names and errors).
    web_public: list[PublicPath] = Field(default_factory=lambda: list(DEFAULT_PUBLIC))
    sla: SlaConfig = SlaConfig()
    catalogs: list[CatalogConfig] = Field(min_length=1)
    directors: list[DirectorConfig] = Field(default_factory=list)  # the live view (bconsole)

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

    _web: WebConfig | None = PrivateAttr(default=None)

    @property
    def web(self) -> WebConfig:
        """Return the web configuration in force: the file's, or `tls:` alone, or none."""
        if self._web is not None:
            return self._web
        if self.tls is not None:
            return WebConfig(tls_server_config=TLSServerConfig(
                cert_file=self.tls.cert_file, key_file=self.tls.key_file))
        return WebConfig()

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


def parse_config(data: Any, source: str = "config") -> Config:
    """Validate already-parsed YAML data."""
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping of keys"])
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, problem_lines(exc)) from None
    # Cross-references: a policy must name catalogs that exist.
    problems = unknown_catalogs(config.sla, [c.name for c in config.catalogs])
    problems += director_problems(config.directors, [c.name for c in config.catalogs])
    problems += bridge_problems(config.state_dir, config.state_database, config.sinks,
                                config.alertmanager)
    if config.web_config_file is not None:
        web, found = load_web_config(config.web_config_file)
        problems += [f"web_config_file ({config.web_config_file}): {p}" for p in found]
        if web is not None and web.tls_server_config is not None and config.tls is not None:
            problems.append("tls: give tls or web_config_file's tls_server_config, not both")
        config._web = web
    if problems:
        raise ConfigError(source, problems)
    return config


def load_config(path: str | Path, web_config_file: str | None = None) -> Config:
    """Read and validate a YAML configuration file (the flag's web config file wins)."""
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
    if web_config_file is not None and isinstance(data, dict):
        data = {**data, "web_config_file": web_config_file}
    return parse_config(data, str(path))
