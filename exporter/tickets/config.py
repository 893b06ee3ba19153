"""Configuration of the ticket bridge: its outbox, sinks, the Alertmanager receiver, backfill."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from exporter.catalog.codes import RESTORE
from exporter.core.settings import (
    Duration,
    Name,
    Secret,
    StateDatabaseConfig,
    Strict,
    env_set,
    read_secret,
    readable,
)
from exporter.tickets.events.models import EventKind
from exporter.tickets.template import check

FinishedClass = Literal["ok", "warning", "error", "canceled", "differences"]


class RetryConfig(Strict):
    """Exponential backoff with jitter between delivery attempts; then dead-letter."""

    initial: Duration = 5.0
    max: Duration = 3600.0
    max_attempts: int = Field(default=100, ge=1)  # with the defaults: about four days of trying


class SinkBase(Strict):
    """What every sink has: a name, the filter of events it takes, the retry policy."""

    name: Name
    events: list[EventKind] = Field(default=["job_result", "alert"], min_length=1)
    status: list[FinishedClass] | None = None  # job results of these classes only
    job_types: list[Annotated[str, Field(pattern=r"^[A-Za-z]$")]] | None = None  # e.g. [B, C]
    severities: list[str] | None = None  # alerts of these `severity` labels only
    # Tell the sink when a job failure it took is made good by a later success of that job.
    resolutions: bool = True
    retry: RetryConfig = RetryConfig()
    timeout: Duration = 10.0


class RedmineSinkConfig(SinkBase):
    """A Redmine project: one issue per job result and per alert group."""

    type: Literal["redmine"]
    url: str = Field(pattern=r"^https?://")
    api_key_file: Path | None = None
    api_key_env: str | None = None
    project: str
    tracker_id: int = 1
    external_id_field: int = Field(ge=1)  # id of the custom field holding the event/alert key
    job_results: Literal["all", "not_ok", "log"] = "all"
    log_issue: Literal["client", "client_month"] = "client"  # the log's issue, with "log"
    # Restores (Type R) are always filed and never closed by the bridge: a person closes them.
    restore_ack: bool = False
    close_on_resolve: bool = True
    reopen_window: Duration = 86400.0
    closed_status_id: int = 5
    reopened_status_id: int = 1
    priorities: dict[str, int] = Field(
        default_factory=lambda: {"critical": 4, "warning": 3, "info": 2}
    )
    default_priority: int = 2

    _file = field_validator("api_key_file")(readable)
    _env = field_validator("api_key_env")(env_set)

    @model_validator(mode="after")
    def _one_key(self) -> "RedmineSinkConfig":
        if (self.api_key_file is None) == (self.api_key_env is None):
            raise ValueError("give exactly one of api_key_file or api_key_env")
        return self

    @model_validator(mode="after")
    def _restores_reach(self) -> "RedmineSinkConfig":
        """restore_ack promises a ticket per restore: the filter must let every restore in."""
        if self.restore_ack and (
            "job_result" not in self.events
            or (self.job_types is not None and RESTORE not in self.job_types)
            or (self.status is not None and "ok" not in self.status)
        ):
            raise ValueError("restore_ack needs events to include job_result, job_types (if "
                             "given) to include R and status (if given) to include ok")
        return self

    def api_key(self) -> Secret:
        """Return the API key, read now."""
        key = read_secret(self.api_key_file, self.api_key_env)
        assert key is not None  # guaranteed by _one_key
        return key


class WebhookSinkConfig(SinkBase):
    """A generic HTTP endpoint that receives each event as JSON."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)  # not secret
    headers_file: Path | None = None  # secret headers, one `Name: value` per line
    body_template: str | None = None  # JSON with ${name} placeholders; None: the event as JSON

    _file = field_validator("headers_file")(readable)

    @field_validator("body_template")
    @classmethod
    def _template(cls, template: str | None) -> str | None:
        return None if template is None else check(template)

    def secret_headers(self) -> dict[str, Secret]:
        """Return the headers of headers_file, read now."""
        if self.headers_file is None:
            return {}
        out: dict[str, Secret] = {}
        for line in self.headers_file.read_text(encoding="utf-8").splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip():
                out[name.strip()] = Secret(value.strip())
        return out


class AppriseSinkConfig(SinkBase):
    """Any Apprise URLs (pagers, chat, e-mail); the URLs hold credentials, so they are secret."""

    type: Literal["apprise"]
    urls_file: Path | None = None  # one URL per line; lines starting with # are comments
    urls_env: str | None = None  # URLs separated by whitespace or commas
    tags: list[str] = Field(default_factory=list)

    _file = field_validator("urls_file")(readable)
    _env = field_validator("urls_env")(env_set)

    @model_validator(mode="after")
    def _one_source(self) -> "AppriseSinkConfig":
        if (self.urls_file is None) == (self.urls_env is None):
            raise ValueError("give exactly one of urls_file or urls_env")
        return self

    def urls(self) -> list[Secret]:
        """Return the Apprise URLs, read now."""
        text = read_secret(self.urls_file, self.urls_env)
        lines = text.get().splitlines() if text else []
        kept = " ".join(line for line in lines if not line.lstrip().startswith("#"))
        return [Secret(u) for u in kept.replace(",", " ").split()]


class EmailSinkConfig(SinkBase):
    """An SMTP server: a message per event, threaded per ticket key (RT, Znuny, Zammad...)."""

    model_config = ConfigDict(populate_by_name=True)

    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)  # 587 with starttls, 465 with tls
    security: Literal["starttls", "tls", "none"] = "starttls"
    ca_file: Path | None = None  # the CA that signed the server's certificate; default: system
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    sender: str = Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    cc: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(default_factory=list)
    html: bool = False  # add an HTML part rendered from the same fields as the text
    message_id_domain: str | None = None  # right of the @ in Message-IDs; default: from's domain

    _files = field_validator("ca_file", "password_file")(readable)
    _env = field_validator("password_env")(env_set)

    @model_validator(mode="after")
    def _credentials(self) -> "EmailSinkConfig":
        if self.username is not None and (self.password_file is None) == (
                self.password_env is None):
            raise ValueError("username needs exactly one of password_file or password_env")
        if self.username is None and (self.password_file or self.password_env):
            raise ValueError("password_file / password_env need a username")
        if self.username is not None and self.security == "none":
            raise ValueError("username needs security starttls or tls: no password in clear")
        return self

    def password(self) -> Secret | None:
        """Return the SMTP password, read now."""
        return read_secret(self.password_file, self.password_env)

    def smtp_port(self) -> int:
        """Return the port: the given one, else the usual one for the security."""
        return self.port or {"starttls": 587, "tls": 465, "none": 25}[self.security]


SinkConfig = Annotated[
    RedmineSinkConfig | WebhookSinkConfig | AppriseSinkConfig | EmailSinkConfig,
    Field(discriminator="type"),
]


class BearerAuth(Strict):
    """`Authorization: Bearer <token>` as Alertmanager's http_config sends it."""

    type: Literal["bearer"]
    token_file: Path

    _file = field_validator("token_file")(readable)


class BasicAuth(Strict):
    """HTTP basic auth as Alertmanager's http_config sends it."""

    type: Literal["basic"]
    username: str = Field(min_length=1)
    password_file: Path

    _file = field_validator("password_file")(readable)


AuthConfig = Annotated[BearerAuth | BasicAuth, Field(discriminator="type")]


class AlertmanagerConfig(Strict):
    """The receiver `POST /alertmanager`; auth must be given, or `none` said explicitly."""

    auth: AuthConfig | Literal["none"]
    max_body_bytes: int = Field(default=1 << 20, ge=1024)


class BridgeKeys(Strict):
    """The ticket bridge's top-level keys, declared once: Config inherits them."""

    state_dir: Path | None = None  # the outbox of the ticket bridge
    state_database: StateDatabaseConfig | None = None  # instead of state_dir: for replicas
    sinks: list[SinkConfig] = Field(default_factory=list)
    alertmanager: AlertmanagerConfig | None = None
    backfill: Duration = 0.0  # at first start, replay jobs that finished this long ago


def bridge_problems(state_dir: Path | None, state_database: StateDatabaseConfig | None,
                    sinks: list[SinkConfig], alertmanager: AlertmanagerConfig | None
                    ) -> list[str]:
    """Cross-checks the models cannot do alone: unique sink names, one outbox when needed."""
    problems = []
    seen: set[str] = set()
    for i, sink in enumerate(sinks):
        if sink.name in seen:
            problems.append(f"sinks.{i}.name: sink name {sink.name!r} is used twice")
        seen.add(sink.name)
    if state_dir is not None and state_database is not None:
        problems.append("state_database: give state_dir or state_database, not both")
    if (sinks or alertmanager) and state_dir is None and state_database is None:
        problems.append("state_dir: sinks and alertmanager need a state_dir (or a "
                        "state_database) for the outbox")
    if alertmanager is not None and not any("alert" in s.events for s in sinks):
        problems.append("alertmanager: no sink takes `alert` events")
    return problems
