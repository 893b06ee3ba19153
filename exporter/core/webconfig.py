"""The web configuration file every Prometheus exporter reads (exporter-toolkit's format).

`--web.config.file` (or `web_config_file:`) names a YAML file with `tls_server_config`,
`http_server_config`, `basic_auth_users` and `rate_limit`, keys and meanings as node_exporter's.
Where Python's TLS cannot do what Go's does, the key is refused with its path, never ignored.
"""

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from exporter.core.settings import Duration, Strict, problem_lines, readable

# Go's names (crypto/tls) of the cipher suites it offers, and OpenSSL's names for them.
CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
}
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1",
          "X25519": "X25519"}
TLSVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
# The headers exporter-toolkit lets a web config set, with the values it accepts (None: any).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None, "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",), "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}
BCRYPT = re.compile(r"^\$2[abxy]?\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


class TLSServerConfig(Strict):
    """`tls_server_config`: the server's certificate and how clients must authenticate."""

    cert_file: Path | None = None
    key_file: Path | None = None
    cert: str | None = None  # PEM inline, instead of cert_file
    key: str | None = Field(default=None, repr=False)  # PEM inline, instead of key_file
    client_auth_type: Literal[
        "NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert"] = "NoClientCert"
    client_ca_file: Path | None = None
    client_ca: str | None = None  # PEM inline, instead of client_ca_file
    client_allowed_sans: list[str] | None = None
    min_version: TLSVersion = "TLS12"
    max_version: TLSVersion = "TLS13"
    cipher_suites: list[str] | None = None
    prefer_server_cipher_suites: bool = True
    curve_preferences: list[str] | None = None

    _files = field_validator("cert_file", "key_file", "client_ca_file")(readable)

    @field_validator("client_auth_type")
    @classmethod
    def _verifiable(cls, kind: str) -> str:
        # Python's TLS checks every certificate it asks for; Go's two unverified modes, which
        # exporter-toolkit itself calls insecure, cannot be had here.
        if kind in ("RequestClientCert", "RequireAnyClientCert"):
            raise ValueError(f"{kind} (an unverified client certificate) is not supported; use "
                             "VerifyClientCertIfGiven or RequireAndVerifyClientCert")
        return kind

    @field_validator("client_allowed_sans")
    @classmethod
    def _no_sans(cls, sans: list[str] | None) -> list[str] | None:
        if sans:
            raise ValueError("not supported: the exporter cannot see the client certificate's "
                             "SANs; issue client certificates from a CA of their own instead")
        return sans

    @field_validator("cipher_suites")
    @classmethod
    def _ciphers(cls, names: list[str] | None) -> list[str] | None:
        unknown = [n for n in names or () if n not in CIPHERS]
        if unknown:
            raise ValueError(f"unknown cipher suite(s) {unknown}; known: {sorted(CIPHERS)}")
        return names

    @field_validator("curve_preferences")
    @classmethod
    def _curves(cls, names: list[str] | None) -> list[str] | None:
        unknown = [n for n in names or () if n not in CURVES]
        if unknown:
            raise ValueError(f"unknown curve(s) {unknown}; known: {sorted(CURVES)}")
        if names and len(names) > 1:
            raise ValueError("Python's TLS takes one curve; list only the one to use")
        return names

    @model_validator(mode="after")
    def _complete(self) -> "TLSServerConfig":
        if (self.cert_file is None) == (self.cert is None):
            raise ValueError("give cert_file or cert (one of them)")
        if (self.key_file is None) == (self.key is None):
            raise ValueError("give key_file or key (one of them)")
        if self.client_ca_file is not None and self.client_ca is not None:
            raise ValueError("give client_ca_file or client_ca, not both")
        verifies = self.client_auth_type != "NoClientCert"
        if verifies and self.client_ca_file is None and self.client_ca is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        order = ("TLS10", "TLS11", "TLS12", "TLS13")
        if order.index(self.min_version) > order.index(self.max_version):
            raise ValueError("min_version is above max_version")
        return self


class HTTPServerConfig(Strict):
    """`http_server_config`: HTTP/2 (accepted; this server speaks HTTP/1.1) and headers."""

    http2: bool = True
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if name not in HEADERS:
                raise ValueError(f"header {name!r} cannot be set; allowed: {sorted(HEADERS)}")
            allowed = HEADERS[name]
            if value and allowed is not None and value.lower() not in allowed:
                raise ValueError(f"{name}: {value!r} is not one of {list(allowed)}")
        return {k: v for k, v in headers.items() if v}  # blank means unset


class RateLimit(Strict):
    """`rate_limit`: a token bucket over every request of the server."""

    interval: Duration = 0.0  # between two requests; 0 turns the limiter off
    burst: int = Field(default=0, ge=0)


class WebConfig(Strict):
    """The whole web configuration file."""

    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = HTTPServerConfig()
    basic_auth_users: dict[str, str] = Field(default_factory=dict, repr=False)
    rate_limit: RateLimit | None = None

    @field_validator("basic_auth_users")
    @classmethod
    def _hashed(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if not user or ":" in user:
                raise ValueError("a user name must be non-empty and without ':'")
            if not BCRYPT.match(hashed or ""):
                # Never echo the value: it may be the plain-text password it should not be.
                raise ValueError(f"{user}: not a bcrypt hash (e.g. from `htpasswd -nBC 10 \"\"`)")
        return users


def load_web_config(path: Path) -> tuple[WebConfig | None, list[str]]:
    """Read a web configuration file; on failure None and its problems with their key paths."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        return None, [f"cannot read the file: {exc.strerror}"]
    except yaml.YAMLError as exc:
        return None, [f"not YAML: {getattr(exc, 'problem', exc)}"]
    try:
        return WebConfig.model_validate(data), []
    except ValidationError as exc:
        return None, problem_lines(exc)
