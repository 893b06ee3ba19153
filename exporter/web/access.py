"""Access control on every route: basic auth (bcrypt, cached), headers, rate limit, and TLS.

One ASGI middleware in front of the app. `/alertmanager` keeps its own bearer or basic auth; the
paths in `web_public` answer without credentials. A verified password is cached by a digest of
(user, password, hash), as exporter-toolkit does, so a scrape pays bcrypt once, not every time.
Unknown users are checked against a dummy hash, so the answer's timing says nothing about who
exists; bcrypt runs one at a time off the event loop, so a flood of wrong passwords slows only
itself.
"""

import base64
import binascii
import hashlib
import os
import ssl
import tempfile
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import bcrypt

from exporter.core.webconfig import CIPHERS, CURVES, RateLimit, TLSServerConfig, WebConfig

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OWN_AUTH = "/alertmanager"  # the receiver checks its own credentials
CACHE_SIZE = 1000  # verified (user, password) pairs kept; exporter-toolkit keeps 100
PUBLIC_SCOPE_KEY = "bacula_exporter.public"  # set when a public path answered without auth
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
VERIFY = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
          "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}


class Verifier:
    """Checks `Authorization: Basic` against bcrypt hashes, caching every verdict."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = {u: h.encode() for u, h in users.items()}
        # What an unknown user is checked against: a random password at the users' highest
        # cost, so an unknown name takes as long as a known one with a wrong password.
        cost = max(int(h.split(b"$")[2]) for h in self.users.values())
        self.dummy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(cost))
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._bcrypt = anyio.CapacityLimiter(1)  # one hash at a time, never on the event loop

    async def user(self, header: str) -> str | None:
        """Return the authenticated user of an Authorization header, or None."""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user_b, sep, password = base64.b64decode(value.strip(), validate=True).partition(b":")
            user = user_b.decode()
        except (binascii.Error, ValueError):
            return None
        if not sep:
            return None
        hashed = self.users.get(user, self.dummy)
        key = hashlib.sha256(b"\0".join((user_b, password, hashed))).digest()
        verdict = self._cache.get(key)
        if verdict is None:
            verdict = await anyio.to_thread.run_sync(_check, password, hashed,
                                                     limiter=self._bcrypt)
            self._cache[key] = verdict
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return user if verdict and user in self.users else None


def _check(password: bytes, hashed: bytes) -> bool:
    """Run bcrypt (constant-time inside); a password over its 72-byte limit never matches."""
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False


class Bucket:
    """A token bucket: `burst` requests at once, then one per `interval`."""

    def __init__(self, limit: RateLimit) -> None:
        self.interval = limit.interval
        self.capacity = float(max(1, limit.burst))
        self.tokens = self.capacity
        self.at = time.monotonic()

    def take(self) -> bool:
        """Take a token if there is one."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) / self.interval)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class AccessMiddleware:
    """Asks for credentials where the web config says so and adds its response headers."""

    def __init__(self, app: ASGIApp, web: WebConfig, public: Collection[str]) -> None:
        self.app = app
        self.verifier = Verifier(web.basic_auth_users) if web.basic_auth_users else None
        self.public = {f"/{p}" for p in public}
        self.headers = [(k.lower().encode(), v.encode())
                        for k, v in web.http_server_config.headers.items()]
        limit = web.rate_limit
        self.bucket = Bucket(limit) if limit is not None and limit.interval > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it on with the configured headers added."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.headers:
            send = self._with_headers(send)
        if self.bucket is not None and not self.bucket.take():
            await _plain(send, 429, b"too many requests\n")
            return
        path = scope["path"]
        if self.verifier is not None and path != OWN_AUTH:
            header = _header(scope, b"authorization")
            user = await self.verifier.user(header) if header else None
            if user is None and path not in self.public:
                # Same answer whatever was wrong: no hint which users exist.
                await _plain(send, 401, b"unauthorized\n",
                             [(b"www-authenticate", b'Basic realm="bacula-exporter"')])
                return
            scope[PUBLIC_SCOPE_KEY] = user is None
        await self.app(scope, receive, send)

    def _with_headers(self, send: Send) -> Send:
        """Wrap send so every response start carries the configured headers."""

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The web config's value wins over a route's own header of the same name.
                names = {name for name, _ in self.headers}
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in names]
                message["headers"] = [*kept, *self.headers]
            await send(message)

        return sending


def _header(scope: Scope, name: bytes) -> str:
    """Return one request header as text ('' when absent)."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


async def _plain(send: Send, status: int, body: bytes,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Send a short plain-text answer."""
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store"),
        *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """Build the server's TLS context from tls_server_config."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[tls.min_version]
    ctx.maximum_version = TLS_VERSIONS[tls.max_version]
    with tempfile.TemporaryDirectory(prefix="bacula-exporter-tls-") as private:
        # Inline PEM is written to a private folder for the loader, and removed at once.
        cert = tls.cert_file or _private_file(Path(private) / "cert.pem", tls.cert or "")
        key = tls.key_file or _private_file(Path(private) / "key.pem", tls.key or "")
        ctx.load_cert_chain(cert, key)
    ctx.verify_mode = VERIFY[tls.client_auth_type]
    if tls.client_ca_file is not None:
        ctx.load_verify_locations(cafile=tls.client_ca_file)
    elif tls.client_ca is not None:
        ctx.load_verify_locations(cadata=tls.client_ca)
    if tls.cipher_suites:
        ctx.set_ciphers(":".join(CIPHERS[c] for c in tls.cipher_suites))
    if tls.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.curve_preferences:
        ctx.set_ecdh_curve(CURVES[tls.curve_preferences[0]])
    return ctx


def _private_file(path: Path, text: str) -> Path:
    """Write text to a file only its owner can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path
