"""Hostile input: schemathesis over every route, property-based bodies for /alertmanager.

Every answer must be a deliberate one: 200 for a notification that is stored, 4xx with a JSON
`error` for everything else, never a 500. The app runs in-process (ASGI) over a demo SQLite
catalog with the bridge configured as in production (state_dir, a webhook sink, bearer auth).
The inputs tried and the 500s seen are counted and printed at the end of the module.
"""

import base64
import json
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import parse_config
from exporter.demo import DEMO_ZONE, write_demo_catalog
from exporter.service.runner import Exporter
from exporter.tickets.bridge import build_bridge
from exporter.tickets.events import AlertmanagerPayload
from exporter.web.app import create_app
from tests.server import free_port, start, stop

TOKEN = "h0stile-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 1 << 16  # max_body_bytes of the receiver under test
FAST = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@dataclass
class Tally:
    """What was sent and what came back, over the whole module."""

    codes: Counter[tuple[str, int]] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)

    def record(self, route: str, code: int, what: str) -> None:
        """Count one answer; remember what caused a 5xx."""
        self.codes[(route, code)] += 1
        if code >= 500:
            self.server_errors.append(f"{route} {code}: {what[:200]}")

    @property
    def tried(self) -> int:
        """Return how many requests were sent."""
        return sum(self.codes.values())


TALLY = Tally()


@dataclass
class World:
    """The app under test and a client that turns server exceptions into 500s."""

    app: FastAPI
    client: TestClient
    config: Path


def config_data(tmp: Path, port: int = 9625) -> dict[str, Any]:
    """Return the exporter configuration: demo catalog, outbox, webhook sink, bearer receiver."""
    db = tmp / "bacula.db"
    if not db.exists():
        write_demo_catalog(db)
    (tmp / "am-token").write_text(TOKEN + "\n")
    return {
        "listen": f"127.0.0.1:{port}", "poll_interval": "1h", "scrape_min_interval": "5s",
        "catalogs": [{"name": "demo", "url": f"sqlite:///{db}", "timezone": DEMO_ZONE}],
        "state_dir": str(tmp / "state"),
        # Nothing listens on port 9 of loopback; the workers are not started anyway.
        "sinks": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"}],
        "alertmanager": {"auth": {"type": "bearer", "token_file": str(tmp / "am-token")},
                         "max_body_bytes": LIMIT},
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Build the app as `bacula-exporter --config` does, without the background threads."""
    tmp = tmp_path_factory.mktemp("hostile")
    data = config_data(tmp)
    config = parse_config(data)
    bridge = build_bridge(config)
    assert bridge is not None and bridge.alertmanager is not None
    exporter = Exporter(config, bridge.outbox.listener, bridge.outbox.store.resume, config.backfill)
    app = create_app(exporter, bridge)
    path = tmp / "config.yml"
    path.write_text(json.dumps(data))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield World(app, client, path)
    exporter.stop()
    bridge.outbox.stop()


# -- schemathesis ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def api_schema(world: World) -> schemathesis.BaseSchema:
    """The app's OpenAPI schema, served in-process."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.app)
    # The receiver reads its raw body; the app documents it, so bodies get generated too.
    body = schema.raw_schema["paths"]["/alertmanager"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AlertmanagerPayload"}
    return schema


ROUTES = [("POST", "/alertmanager"), ("GET", "/metrics"), ("GET", "/"), ("GET", "/healthz"),
          ("GET", "/readyz")]


def test_every_route_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    """A route added to the app must be added to ROUTES too."""
    paths = api_schema.raw_schema["paths"]
    found = {(method.upper(), path) for path, methods in paths.items() for method in methods}
    assert found == set(ROUTES)


def _call(case: Any, headers: dict[str, str] | None, label: str) -> None:
    """Send one generated case; the only check is that the server never fails."""
    response = case.call(headers=headers)
    route = f"{case.method} {case.path} ({label})"
    TALLY.record(route, response.status_code, repr(case.body)[:200])
    assert response.status_code < 500, (route, response.status_code, response.text[:300])
    if case.path == "/alertmanager":
        expected = {200, 400, 413, 422} if headers == AUTH else {401}
        assert response.status_code in expected, (response.status_code, response.text[:300])
        assert "error" in response.json() or response.status_code == 200


# schemathesis' own pytest plugin (schemathesis.pytest.from_fixture) fails on pytest 9
# ('Function' object has no attribute '_nodeid'): draw its cases through hypothesis instead.
# Negative cases need something to break: only /alertmanager takes input (its body).
@pytest.mark.parametrize(("method", "path", "mode"), [
    *[(m, p, schemathesis.GenerationMode.POSITIVE) for m, p in ROUTES],
    ("POST", "/alertmanager", schemathesis.GenerationMode.NEGATIVE),
], ids=lambda v: str(getattr(v, "value", v)))
@given(data=st.data())
@FAST
def test_schemathesis_every_route(api_schema: schemathesis.BaseSchema, method: str, path: str,
                                  mode: schemathesis.GenerationMode, data: st.DataObject
                                  ) -> None:
    """Schema-driven cases (valid and invalid) on every route, with and without credentials."""
    operation = api_schema[path][method]
    case = data.draw(operation.as_strategy(generation_mode=mode))
    _call(case, AUTH, "auth")
    _call(case, None, "anonymous")
    _call(case, {"Authorization": "Bearer wrong"}, "wrong token")


# -- property-based bodies for /alertmanager -------------------------------------------------

label_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
label_sets = st.dictionaries(label_text, label_text, max_size=4)
# RFC 3339 as Alertmanager writes it: offsets in whole minutes.
when = st.builds(
    lambda d, minutes: d.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat(),
    st.datetimes(), st.integers(-14 * 60, 14 * 60),
)


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    """A valid Alertmanager version 4 notification."""
    group = draw(label_sets)
    alerts = draw(st.lists(st.fixed_dictionaries({
        "status": st.sampled_from(["firing", "resolved"]),
        "labels": label_sets.map(lambda labels: {**labels, **group}),
        "annotations": label_sets,
        "startsAt": when,
        "endsAt": when,
        "fingerprint": st.text(string.hexdigits, max_size=16),
    }), min_size=1, max_size=4))
    return {
        "version": "4", "groupKey": draw(label_text), "truncatedAlerts": draw(
            st.integers(0, 2**63)), "status": draw(st.sampled_from(["firing", "resolved"])),
        "receiver": draw(label_text), "groupLabels": group, "commonLabels": {},
        "commonAnnotations": draw(label_sets), "externalURL": draw(label_text), "alerts": alerts,
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(label_text, inner, max_size=5),
    max_leaves=30,
)


def nest(value: Any, depth: int) -> Any:
    """Wrap a value in `depth` alternating lists and objects."""
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


@st.composite
def broken_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """A valid notification with one thing broken: a field gone, a wrong type, deep nesting."""
    payload = draw(payloads())
    target: dict[str, Any] = payload
    if draw(st.booleans()):
        target = payload["alerts"][0]
    key = draw(st.sampled_from(sorted(target)))
    how = draw(st.sampled_from(["delete", "retype", "nest"]))
    if how == "delete":
        del target[key]
    elif how == "retype":
        target[key] = draw(json_values)
    else:
        target[key] = nest(target[key], draw(st.integers(1, 200)))
    return payload


def post(world: World, body: bytes | Iterator[bytes],
         headers: dict[str, str | bytes] | None = None, label: str = "body") -> httpx.Response:
    """POST to the receiver, count the answer and check it is deliberate."""
    sent: dict[str, str | bytes] = {"Content-Type": "application/json", **AUTH, **(headers or {})}
    response: httpx.Response = world.client.post("/alertmanager", content=body, headers=sent)
    TALLY.record(f"POST /alertmanager ({label})", response.status_code,
                 body[:200].decode("latin-1") if isinstance(body, bytes) else "<stream>")
    assert response.status_code in (200, 400, 401, 413, 422), (response.status_code,
                                                               response.text[:300])
    answer = response.json()
    if response.status_code == 200:
        assert answer["status"] in ("stored", "duplicate")
    else:
        assert isinstance(answer.get("error"), str)
    return response


@given(payloads())
@FAST
def test_valid_notifications_are_stored(world: World, payload: dict[str, Any]) -> None:
    """Anything that is a version 4 notification is stored, however odd its labels."""
    assert post(world, json.dumps(payload).encode(), label="valid").status_code == 200


@given(broken_payloads())
@FAST
def test_broken_notifications_are_refused(world: World, payload: dict[str, Any]) -> None:
    """A missing field, a wrong type or deep nesting: 200 if still valid, else a JSON 4xx."""
    code = post(world, json.dumps(payload).encode(), label="broken").status_code
    try:
        AlertmanagerPayload.model_validate(payload)
    except ValueError:
        assert code == 422
    else:
        assert code == 200


@given(json_values)
@FAST
def test_any_json_is_refused_cleanly(world: World, value: Any) -> None:
    """Arbitrary JSON documents are not notifications: 422."""
    assert post(world, json.dumps(value).encode(), label="any json").status_code == 422


@given(st.binary(max_size=2000), st.sampled_from([
    "application/json", "text/plain", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "application/json; charset=latin-1", "",
]))
@FAST
def test_random_bytes_are_refused_cleanly(world: World, body: bytes, content_type: str) -> None:
    """Bytes that are not JSON, under any content type: 400 (or 422 when they happen to parse)."""
    code = post(world, body, {"Content-Type": content_type}, label="bytes").status_code
    assert code in (400, 422)


@given(payloads(), st.sampled_from(["utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1"]))
@FAST
def test_other_encodings(world: World, payload: dict[str, Any], encoding: str) -> None:
    """JSON's own encodings are understood; latin-1 beyond ASCII is not UTF-8: 400."""
    text = json.dumps(payload, ensure_ascii=False)
    try:
        body = text.encode(encoding)
    except UnicodeEncodeError:
        body = text.encode(encoding, "replace")
    code = post(world, body, label=f"encoding {encoding}").status_code
    if encoding != "latin-1" or text.isascii():
        assert code in (200, 422)  # "replace" may have left something that is not valid
    else:
        assert code in (200, 400, 422)


@given(st.integers(LIMIT + 1, 4 * LIMIT), st.booleans())
@settings(FAST, max_examples=20)
def test_huge_bodies_are_413(world: World, size: int, streamed: bool) -> None:
    """Over max_body_bytes: 413, whether Content-Length says so or the body is streamed."""
    body = json.dumps({"version": "4", "pad": "x" * size}).encode()
    content: bytes | Iterator[bytes] = body
    if streamed:  # no Content-Length: the limit is enforced while reading
        content = iter([body[i : i + 8192] for i in range(0, len(body), 8192)])
    assert post(world, content, label="huge").status_code == 413


@given(st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=80),
    st.builds(lambda s: f"Bearer {s}", st.text(alphabet=st.characters(
        min_codepoint=32, max_codepoint=255), max_size=40)),
    st.builds(lambda b: "Basic " + base64.b64encode(b).decode(), st.binary(max_size=40)),
))
@FAST
def test_wrong_credentials_are_401(world: World, header: str) -> None:
    """Any Authorization header but the right one: 401 with WWW-Authenticate, nothing stored."""
    if header.strip() == AUTH["Authorization"]:
        return
    response = post(world, b"{}", {"Authorization": header.encode("latin-1")},
                    label="wrong credentials")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert TOKEN not in response.text


def test_no_credentials_is_401(world: World) -> None:
    response = world.client.post("/alertmanager", json={})
    TALLY.record("POST /alertmanager (no credentials)", response.status_code, "")
    assert response.status_code == 401
    assert response.json()["error"]


@pytest.mark.parametrize(("name", "body"), [
    ("nesting 1000", b"[" * 1000 + b"]" * 1000),
    ("nesting 15000", b"[" * 15000 + b"]" * 15000),
    ("object nesting 10000", b'{"a":' * 10000 + b"1" + b"}" * 10000),
    ("integer of 5000 digits", b'{"version": "4", "truncatedAlerts": ' + b"9" * 5000 + b"}"),
    ("NaN and Infinity", b'{"version": "4", "truncatedAlerts": NaN, "x": Infinity}'),
    ("lone surrogate", b'{"version": "4", "receiver": "\\ud800"}'),
    ("NUL bytes", b'{"version": "4\x00"}'),
    ("empty", b""),
    ("BOM only", b"\xef\xbb\xbf"),
    ("overlong UTF-8", b'{"version": "\xc0\xb4"}'),
])
def test_known_traps(world: World, name: str, body: bytes) -> None:
    """Inputs that break naive JSON handling: each is a 400 or a 422, never a 500."""
    assert post(world, body, label=name).status_code in (400, 422)


def test_surrogates_in_a_valid_notification(world: World) -> None:
    """A lone surrogate inside labels (valid JSON, not encodable as UTF-8) is stored or refused."""
    body = json.dumps({
        "version": "4", "groupKey": "{}", "status": "firing", "receiver": "r\ud800",
        "groupLabels": {"alertname": "X\udfff"},
        "alerts": [{"status": "firing", "labels": {"alertname": "X\udfff"},
                    "startsAt": "2026-11-18T03:00:00Z"}],
    }).encode()
    assert post(world, body, label="surrogates").status_code in (200, 422)


def test_lying_framing_on_a_real_server(tmp_path: Path) -> None:
    """On a real socket: Content-Length too big, too small, not a number, chunked and huge."""
    port = free_port()
    data = config_data(tmp_path, port)
    config = tmp_path / "config.yml"
    config.write_text(json.dumps(data))
    proc = start(["--config", str(config)], port)
    url = f"http://127.0.0.1:{port}/alertmanager"
    try:
        with httpx.Client(timeout=10) as client:
            def gen() -> Iterator[bytes]:
                for _ in range(4 * LIMIT // 4096):
                    yield b" " * 4096

            cases: list[tuple[str, dict[str, str], bytes | Iterator[bytes], set[int]]] = [
                ("chunked huge", {}, gen(), {413}),
                ("chunked small", {}, iter([b'{"vers', b'ion": "4"}']), {422}),
                ("no auth, huge", {"Authorization": ""}, gen(), {401}),
            ]
            for name, headers, content, codes in cases:
                sent = {**AUTH, "Content-Type": "application/json", **headers}
                if headers.get("Authorization") == "":
                    del sent["Authorization"]
                try:
                    response = client.post(url, content=content, headers=sent)
                except httpx.TransportError:
                    # The server may close on a body it will not read: that is not a 500 either.
                    TALLY.record(f"POST /alertmanager ({name})", 0, "")
                    continue
                TALLY.record(f"POST /alertmanager ({name})", response.status_code, name)
                assert response.status_code in codes, (name, response.status_code)
        head = b"POST /alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
        for name, raw, codes in (
            # Declared far over the limit: refused before the body is read.
            ("declared huge", head + b"\r\nContent-Length: 10000000\r\n\r\n{}", {413}),
            ("length not a number", head + b"\r\nContent-Length: abc\r\n\r\n{}", {400}),
            # Two bytes declared, more sent: the body is "{}", the rest is a bad next request.
            ("length too small", head + b"\r\nContent-Length: 2\r\n\r\n{}{}{}", {422}),
            # More declared than sent: the server waits for the rest; we give up first.
            ("length too big", head + b"\r\nContent-Length: 99\r\n\r\n{}", {0}),
        ):
            code = raw_status(port, raw)
            TALLY.record(f"POST /alertmanager (raw: {name})", code, name)
            assert code in codes, (name, code)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        stop(proc)


def raw_status(port: int, request: bytes) -> int:
    """Send raw bytes and return the first status code (0: no answer within 2 s)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(request)
        data = b""
        try:
            while b"\r\n" not in data and (chunk := sock.recv(4096)):
                data += chunk
        except OSError:
            pass  # a timeout: no answer
    first = data.split(b"\r\n", 1)[0].split()
    return int(first[1]) if len(first) > 1 and first[1].isdigit() else 0


def test_zz_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """Print the inputs tried and the 500s seen; there must be none."""
    with capsys.disabled():
        print(f"\nhostile input: {TALLY.tried} requests, {len(TALLY.server_errors)} 5xx")
        for (route, code), count in sorted(TALLY.codes.items()):
            print(f"  {route}: {code} x{count}")
    assert TALLY.tried > 0
    assert TALLY.server_errors == []
