"""The web configuration file (exporter-toolkit's format) and the basic-auth verifier."""

import base64
from pathlib import Path

import anyio
import bcrypt
import pytest

from exporter.config import ConfigError, parse_config
from exporter.core.webconfig import RateLimit, load_web_config
from exporter.web.access import Bucket, Verifier

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()


def problems(tmp_path: Path, text: str) -> list[str]:
    """Load a web config text; return its problems."""
    path = tmp_path / "web.yml"
    path.write_text(text)
    web, found = load_web_config(path)
    assert (web is None) == bool(found)
    return found


def test_a_node_exporter_file_loads(tmp_path: Path) -> None:
    """The keys node_exporter's documentation shows load with their meaning."""
    (tmp_path / "c.pem").write_text("x")
    assert problems(tmp_path, f"""
tls_server_config:
  cert_file: {tmp_path / 'c.pem'}
  key_file: {tmp_path / 'c.pem'}
  client_auth_type: VerifyClientCertIfGiven
  client_ca_file: {tmp_path / 'c.pem'}
  min_version: TLS13
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
  curve_preferences: [X25519]
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  prometheus: "{HASH}"
rate_limit:
  interval: 100ms
  burst: 50
""") == []


@pytest.mark.parametrize(("text", "problem"), [
    ("basic_auth_users:\n  alice: hunter2\n", "basic_auth_users: alice: not a bcrypt hash"),
    ("nonsense: 1\n", "nonsense: Extra inputs are not permitted"),
    ("tls_server_config:\n  cert: x\n  key: y\n  typo: 1\n",
     "tls_server_config.typo: Extra inputs are not permitted"),
    ("tls_server_config:\n  cert: x\n  key: y\n  client_auth_type: RequestClientCert\n",
     "tls_server_config.client_auth_type: RequestClientCert (an unverified client certificate)"),
    ("tls_server_config:\n  cert: x\n  key: y\n  client_auth_type: RequireAndVerifyClientCert\n",
     "tls_server_config: client_auth_type RequireAndVerifyClientCert needs client_ca_file"),
    ("tls_server_config:\n  key: y\n", "tls_server_config: give cert_file or cert"),
    ("tls_server_config:\n  cert: x\n  key: y\n  min_version: TLS13\n  max_version: TLS12\n",
     "tls_server_config: min_version is above max_version"),
    ("tls_server_config:\n  cert: x\n  key: y\n  cipher_suites: [RC4]\n",
     "tls_server_config.cipher_suites: unknown cipher suite(s) ['RC4']"),
    ("tls_server_config:\n  cert: x\n  key: y\n  client_allowed_sans: [a]\n",
     "tls_server_config.client_allowed_sans: not supported"),
    ("http_server_config:\n  headers:\n    Server: me\n",
     "http_server_config.headers: header 'Server' cannot be set"),
    ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
     "http_server_config.headers: X-Frame-Options: 'allow' is not one of"),
    ("tls_server_config:\n  cert_file: /no/such/file\n  key: y\n",
     "tls_server_config.cert_file:"),
    ("- a list\n", "(top level): Input should be a valid dictionary"),
])
def test_bad_files_name_the_key(tmp_path: Path, text: str, problem: str) -> None:
    """Each problem comes with its key path; a plain-text password is never echoed."""
    found = problems(tmp_path, text)
    assert any(p.startswith(problem) for p in found), found
    assert not any("hunter2" in p for p in found)


def test_the_config_key_and_tls_shortcut(tmp_path: Path) -> None:
    """The file's problems carry its path; `tls:` and tls_server_config exclude each other."""
    (tmp_path / "c.pem").write_text("x")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {tmp_path / 'c.pem'}\n"
                   f"  key_file: {tmp_path / 'c.pem'}\nbasic_auth_users: {{u: plain}}\n")
    base = {"catalogs": [{"name": "a", "url": "sqlite:////x.db", "timezone": "UTC"}],
            "web_config_file": str(web),
            "tls": {"cert_file": str(tmp_path / "c.pem"), "key_file": str(tmp_path / "c.pem")}}
    with pytest.raises(ConfigError) as caught:
        parse_config(base)
    (problem,) = caught.value.problems
    assert problem.startswith(f"web_config_file ({web}): basic_auth_users: u: not a bcrypt hash")
    web.write_text(f"tls_server_config:\n  cert_file: {tmp_path / 'c.pem'}\n"
                   f"  key_file: {tmp_path / 'c.pem'}\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(base)
    assert caught.value.problems == [
        "tls: give tls or web_config_file's tls_server_config, not both"]
    shortcut = parse_config({k: v for k, v in base.items() if k != "web_config_file"})
    tls = shortcut.web.tls_server_config
    assert tls is not None and tls.cert_file == tmp_path / "c.pem"
    assert shortcut.web_public == ["healthz"]


def basic(user: bytes, password: bytes) -> str:
    """Return an Authorization header value."""
    return "Basic " + base64.b64encode(user + b":" + password).decode()


def test_verifier_checks_and_caches() -> None:
    """Right password: the user; wrong or unknown: None; each verdict is cached."""
    verifier = Verifier({"prometheus": HASH})

    async def run() -> list[str | None]:
        return [await verifier.user(h) for h in (
            basic(b"prometheus", b"s3cret"), basic(b"prometheus", b"s3cret"),
            basic(b"prometheus", b"wrong"), basic(b"nobody", b"s3cret"),
            basic(b"prometheus", b"x" * 100), "Bearer abc", "Basic %%%", basic(b"", b""))]

    assert anyio.run(run) == ["prometheus", "prometheus", None, None, None, None, None, None]
    assert len(verifier._cache) == 5  # four distinct pairs, and the empty user
    assert sum(verifier._cache.values()) == 1  # only the right password verified


def test_verifier_dummy_hash_costs_what_a_user_costs() -> None:
    """Unknown users are checked at the configured users' bcrypt cost."""
    costly = bcrypt.hashpw(b"x", bcrypt.gensalt(6)).decode()
    verifier = Verifier({"a": HASH, "b": costly})
    assert verifier.dummy.split(b"$")[2] == b"06"


def test_rate_limit_bucket() -> None:
    """A burst of N, then nothing until the interval has passed."""
    bucket = Bucket(RateLimit(interval=60.0, burst=3))
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
