"""A real Prometheus scrapes the exporter with basic auth and with a client certificate."""

import ssl
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from exporter.demo import write_demo_catalog
from tests.certs import authority, issue
from tests.chain.harness import Prometheus, require_binaries, wait_until
from tests.server import start, stop, write_config

pytestmark = pytest.mark.integration


def job(name: str, target: str, **extra: Any) -> dict[str, Any]:
    """One scrape job over HTTPS with the test CA."""
    return {"job_name": name, "honor_labels": True, "scheme": "https",
            "static_configs": [{"targets": [target]}], **extra}


def test_prometheus_scrapes_with_credentials(tmp_path: Path) -> None:
    """basic_auth and a client certificate get data; a wrong password shows the 401."""
    require_binaries()
    pki = tmp_path / "pki"
    ca = authority(pki, "ca")
    server, client = issue(ca, pki, "server", server=True), issue(ca, pki, "prometheus")
    db = tmp_path / "demo.db"
    write_demo_catalog(db)
    hashed = bcrypt.hashpw(b"scrape-secret", bcrypt.gensalt(10)).decode()
    tls = f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n"
    (tmp_path / "basic").mkdir()
    (tmp_path / "mtls").mkdir()
    basic_web = tmp_path / "basic" / "web.yml"
    basic_web.write_text(tls + f'basic_auth_users:\n  prometheus: "{hashed}"\n')
    mtls_web = tmp_path / "mtls" / "web.yml"
    mtls_web.write_text(tls + f"  client_ca_file: {ca.cert}\n"
                        "  client_auth_type: RequireAndVerifyClientCert\n")
    basic_cfg, basic_port = write_config(tmp_path / "basic", db, poll="1s")
    mtls_cfg, mtls_port = write_config(tmp_path / "mtls", db, poll="1s")
    password = tmp_path / "password"
    password.write_text("scrape-secret")
    trust = {"ca_file": str(ca.cert)}
    verify = ssl.create_default_context(cafile=str(ca.cert))
    exporters = [start(["--config", str(basic_cfg), "--web.config.file", str(basic_web)],
                       basic_port, "https", verify, auth=("prometheus", "scrape-secret"))]
    mutual = ssl.create_default_context(cafile=str(ca.cert))
    mutual.load_cert_chain(str(client.cert), str(client.key))
    exporters.append(start(["--config", str(mtls_cfg), "--web.config.file", str(mtls_web)],
                           mtls_port, "https", mutual))
    prom = Prometheus(tmp_path / "prom", [], [], scrape_configs=[
        job("basic", f"127.0.0.1:{basic_port}", tls_config=trust,
            basic_auth={"username": "prometheus", "password_file": str(password)}),
        job("wrong", f"127.0.0.1:{basic_port}", tls_config=trust,
            basic_auth={"username": "prometheus", "password": "guess"}),
        job("mtls", f"127.0.0.1:{mtls_port}",
            tls_config={**trust, "cert_file": str(client.cert), "key_file": str(client.key)}),
        job("nocert", f"127.0.0.1:{mtls_port}", tls_config=trust),
    ])
    try:
        prom.wait_ready()
        for name in ("basic", "mtls"):
            found = wait_until(lambda n=name: prom.query(f'bacula_catalog_up{{job="{n}"}} == 1'),
                               30, f"data from the {name} job")
            assert found[0]["metric"]["catalog"] == "demo"
        wait_until(lambda: len(prom.targets()) == 4
                   and all(t["health"] != "unknown" for t in prom.targets()), 30,
                   "a verdict on every target")
        by_job = {t["labels"]["job"]: t for t in prom.targets()}
        assert by_job["basic"]["health"] == by_job["mtls"]["health"] == "up", by_job
        assert by_job["wrong"]["health"] == "down"
        assert "401" in by_job["wrong"]["lastError"], by_job["wrong"]["lastError"]
        assert by_job["nocert"]["health"] == "down"
        assert prom.query('up{job="wrong"} == 0') and prom.query('up{job="nocert"} == 0')
    finally:
        prom.stop()
        for exporter in exporters:
            stop(exporter)
