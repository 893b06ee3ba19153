"""Database plumbing every room shares: the PostgreSQL connection set-up and secret scrubbing."""

from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg

from exporter.core.settings import DatabaseConfig, StateDatabaseConfig


class StoreError(OSError):
    """The state database cannot be used; the message carries no secret."""


def pg_connect(cfg: DatabaseConfig, default_user: str, application_name: str, options: str,
               **extra: Any) -> psycopg.Connection[Any]:
    """Open a psycopg connection from a `url` + secret config; psycopg errors pass through."""
    parts = urlsplit(cfg.url)
    password = cfg.password()
    return psycopg.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=unquote(parts.username or default_user),
        dbname=unquote(parts.path.lstrip("/")),
        password=password.get() if password else None,
        connect_timeout=max(1, int(cfg.connect_timeout)),
        application_name=application_name,
        options=options,
        **extra,
    )


def scrub(exc: BaseException, cfg: DatabaseConfig) -> str:
    """Return an error message with the database password (if any) blanked out."""
    text = " ".join(str(exc).split())
    if text in ("", "(0, '')"):
        text = f"{type(exc).__name__}: connection lost"  # what PyMySQL says after a KILL
    try:
        password = cfg.password()
    except OSError:
        password = None  # the secret file went away: then it cannot be in the message either
    if password and password.get():
        text = text.replace(password.get(), "<secret>")
    return text[:500]


def connect_state(cfg: StateDatabaseConfig, purpose: str, autocommit: bool = False
                  ) -> psycopg.Connection[Any]:
    """Connect to the state database; errors come back as StoreError without secrets."""
    timeout_ms = int(cfg.statement_timeout * 1000)
    try:
        return pg_connect(
            cfg, "bacula_exporter", f"bacula-exporter {purpose}",
            (f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms} "
             "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"),
            autocommit=autocommit,
            # A dead peer must be noticed in seconds, not after the kernel's two hours: on our
            # side (a claim or the leader's check would hang) and on the server's (a vanished
            # leader would keep its lock).
            keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
            tcp_user_timeout=max(1000, timeout_ms),
        )
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to the state database: {scrub(exc, cfg)}") from None
