"""Read-only catalog users, password rotation, and secrets that never show in any output."""

import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pymysql
import pytest

from exporter.catalog.engines import connect
from tests import scenario
from tests.conftest import MY, PG, ROOT
from tests.server import free_port, start, stop

pytestmark = pytest.mark.integration


def readonly_user(cat: Any, password: str) -> str:
    """Create a login that may only SELECT in the catalog database; return its name."""
    db = cat.url.rsplit("/", 1)[1]
    user = f"ro_{uuid.uuid4().hex[:8]}"
    if cat.engine == "postgresql":
        with psycopg.connect(**{**PG, "dbname": db}, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'".encode())
            conn.execute(f"GRANT CONNECT ON DATABASE {db} TO {user}".encode())
            conn.execute(f"GRANT USAGE ON SCHEMA public TO {user}".encode())
            conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {user}".encode())
    else:
        with closing(pymysql.connect(**MY, autocommit=True)) as root, root.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY '{password}'")
            cur.execute(f"GRANT SELECT ON {db}.* TO '{user}'@'%%'")
    return user


def drop_user(cat: Any, user: str) -> None:
    """Remove a login created by readonly_user."""
    db = cat.url.rsplit("/", 1)[1]
    if cat.engine == "postgresql":
        with psycopg.connect(**{**PG, "dbname": db}, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {user}".encode())
            conn.execute(f"REVOKE ALL ON DATABASE {db} FROM {user}".encode())
            conn.execute(f"DROP ROLE {user}".encode())
    else:
        with closing(pymysql.connect(**MY, autocommit=True)) as root, root.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%%'")


def test_readonly_users_rotation_and_no_secret_in_any_output(
    make_catalog: Any, tmp_path: Path, state_database: str
) -> None:
    """Wrong then right passwords from files: every output is searched for both values."""
    pg, my = make_catalog("postgresql", scenario.ZONE), make_catalog("mysql", scenario.ZONE)
    secrets = {e: f"S3cret-{e}-{uuid.uuid4().hex}" for e in ("postgresql", "mysql", "state")}
    wrong = f"Wr0ng-{uuid.uuid4().hex}"
    users = {}
    for cat in (pg, my):
        with closing(cat.cursor()) as cur:
            scenario.build().write(cur, cat.engine, 16)
        cat.conn.commit()
        users[cat.engine] = readonly_user(cat, secrets[cat.engine])
    files = {e: tmp_path / f"{e}.secret" for e in secrets}
    files["postgresql"].write_text(secrets["postgresql"] + "\n")
    files["mysql"].write_text(wrong + "\n")  # rotated to the right one below
    files["state"].write_text(secrets["state"] + "\n")
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        f'listen: "127.0.0.1:{port}"\npoll_interval: 1s\nscrape_min_interval: 0s\n'
        "log_level: debug\ncatalogs:\n"
        f"  - name: pg\n    url: 'postgresql://{users['postgresql']}@127.0.0.1:5432/"
        f"{pg.url.rsplit('/', 1)[1]}'\n    password_file: {files['postgresql']}\n"
        f"    timezone: {scenario.ZONE}\n"
        f"  - name: my\n    url: 'mysql://{users['mysql']}@127.0.0.1:3306/"
        f"{my.url.rsplit('/', 1)[1]}'\n    password_file: {files['mysql']}\n"
        f"    timezone: {scenario.ZONE}\n"
        f"state_database:\n  url: '{state_database}'\n  password_file: {files['state']}\n"
    )
    outputs: list[str] = []
    proc = start(["--config", str(config)], port)
    base = f"http://127.0.0.1:{port}"
    try:
        down = httpx.get(f"{base}/readyz").json()
        assert down["catalogs"]["my"]["up"] is False
        assert "Access denied" in down["catalogs"]["my"]["error"]
        outputs += [httpx.get(f"{base}{p}").text for p in ("/metrics", "/", "/readyz")]
        files["mysql"].write_text(secrets["mysql"] + "\n")  # rotation: read again on reconnect
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if httpx.get(f"{base}/readyz").json()["catalogs"]["my"]["up"]:
                break
            time.sleep(0.5)
        metrics = httpx.get(f"{base}/metrics").text
        assert 'bacula_catalog_up{catalog="my"} 1' in metrics
        assert 'bacula_catalog_up{catalog="pg"} 1' in metrics
        outputs += [metrics, httpx.get(f"{base}/").text, httpx.get(f"{base}/readyz").text]
    finally:
        stop(proc)
        outputs.append(proc.stdout.read().decode(errors="replace") if proc.stdout else "")
    for args in (["check-config", str(config)], ["status", "--config", str(config)]):
        done = subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True,
                              text=True, timeout=120, cwd=ROOT)
        outputs += [done.stdout, done.stderr]
    everything = "\n".join(outputs)
    assert "Access denied" in everything  # the failure was reported...
    for secret in (*secrets.values(), wrong):
        assert secret not in everything  # ...without any password in it

    for cat in (pg, my):  # and the read-only login cannot write, whatever the exporter does
        cfg = cat.config().model_copy(update={
            "url": cat.url.replace("//root@", f"//{users[cat.engine]}@")
            .replace("//postgres@", f"//{users[cat.engine]}@"),
            "password_file": files[cat.engine]})
        session = connect(cfg)
        session.begin()
        with pytest.raises(Exception, match=r"(?i)read.?only|denied"):
            session.query("INSERT INTO Version (VersionId) VALUES (99)")
        session.end()
        session.close()
    for cat in (pg, my):
        drop_user(cat, users[cat.engine])
