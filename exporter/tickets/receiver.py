"""The Alertmanager receiver `POST /alertmanager`: auth, a bounded body, durable before 200."""

import base64
import binascii
import hmac
import json
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from exporter.tickets.bridge import Bridge
from exporter.tickets.config import AlertmanagerConfig, BasicAuth
from exporter.tickets.events import AlertmanagerPayload, alert_event
from exporter.tickets.store import STORE_ERRORS

log = logging.getLogger(__name__)


def document_body(schema: dict[str, Any]) -> dict[str, Any]:
    """Describe the receiver's JSON body in the app's OpenAPI schema (in place; returned)."""
    # The route reads the raw request (to bound its size and word its errors), so FastAPI
    # cannot see the body; clients and fuzzers should.
    body = AlertmanagerPayload.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(body.pop("$defs", {}))
    components["AlertmanagerPayload"] = body
    schema["paths"]["/alertmanager"]["post"]["requestBody"] = {
        "required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/AlertmanagerPayload"}}}}
    return schema


def get_bridge(request: Request) -> Bridge:
    """Return the Bridge the app was built with."""
    bridge: Bridge = request.app.state.bridge
    return bridge


BridgeDep = Annotated[Bridge, Depends(get_bridge)]
router = APIRouter()


def _answer(bridge: Bridge, code: int, body: dict[str, Any],
            headers: dict[str, str] | None = None) -> JSONResponse:
    """Count and return a JSON answer."""
    bridge.requests.labels(str(code)).inc()
    return JSONResponse(body, status_code=code, headers=headers)


def _read_secret(path: Path) -> bytes:
    """Read a credential now, so a rotated file takes effect without a restart."""
    return path.read_bytes().removesuffix(b"\n")


def authorized(cfg: AlertmanagerConfig, header: str) -> bool:
    """Check the Authorization header in constant time."""
    if cfg.auth == "none":
        return True
    scheme, _, value = header.partition(" ")
    if isinstance(cfg.auth, BasicAuth):
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = cfg.auth.username.encode() + b":" + _read_secret(cfg.auth.password_file)
        return hmac.compare_digest(given, expected)
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), _read_secret(cfg.auth.token_file))


async def _body(request: Request, limit: int) -> bytes | None:
    """Read the body, or None as soon as it exceeds the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/alertmanager")
async def alertmanager(request: Request, bridge: BridgeDep) -> JSONResponse:
    """Store an Alertmanager notification durably; 200 only once it is on disk."""
    cfg = bridge.alertmanager
    if cfg is None:
        return _answer(bridge, 404, {"error": "the alertmanager receiver is not configured"})
    if not authorized(cfg, request.headers.get("authorization", "")):
        return _answer(bridge, 401, {"error": "bad or missing credentials"},
                       {"WWW-Authenticate": "Basic" if isinstance(cfg.auth, BasicAuth)
                        else "Bearer"})
    raw = await _body(request, cfg.max_body_bytes)
    if raw is None:
        return _answer(bridge, 413, {"error": f"body larger than {cfg.max_body_bytes} bytes"})
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        # Not JSON, not UTF-8/16/32, an integer over 4300 digits, or nested too deep.
        return _answer(bridge, 400, {"error": "the body is not JSON"})
    try:
        payload = AlertmanagerPayload.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                    for e in exc.errors(include_input=False, include_url=False)]
        return _answer(bridge, 422, {"error": "not an Alertmanager version 4 payload",
                             "problems": problems[:20]})
    event = alert_event(payload)
    try:
        # The outbox write blocks on fsync: keep it off the event loop.
        new = await run_in_threadpool(bridge.outbox.add, [event])
    except STORE_ERRORS as exc:
        log.error("alertmanager: cannot store notification %s: %s", event.id, exc)
        return _answer(bridge, 503, {"error": "cannot store the notification; retry later"})
    return _answer(bridge, 200, {"status": "stored" if new else "duplicate", "id": event.id,
                         "key": event.key})
