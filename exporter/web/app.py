"""HTTP routes: /metrics, /healthz, /readyz."""

import secrets
import time
from collections.abc import Collection
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from exporter import __version__
from exporter.core.webconfig import WebConfig
from exporter.exposition.metrics import CONTENT_TYPE
from exporter.service.live import live_overview
from exporter.service.overview import overview
from exporter.service.runner import Exporter
from exporter.tickets.bridge import Bridge
from exporter.tickets.receiver import document_body
from exporter.tickets.receiver import router as receiver_router
from exporter.web.access import PUBLIC_SCOPE_KEY, AccessMiddleware
from exporter.web.page import render_page


def page_headers(nonce: str) -> dict[str, str]:
    """Security headers of the status page: nothing but its own inline style and script runs."""
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
            "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


WHOLE = 4 << 20  # pieces up to this size are handed to the socket whole
SLICE = 1 << 20  # larger ones in slices of this size


class Pieces(Response):
    """A body of ready pieces, sent as they are with its length: no chunk framing, no copy."""

    def __init__(self, pieces: list[bytes], media_type: str, headers: dict[str, str]) -> None:
        self.pieces = pieces
        length = str(sum(len(piece) for piece in pieces))
        super().__init__(None, media_type=media_type,
                         headers={**headers, "Content-Length": length})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the pieces from the event loop: they are bytes already, nothing blocks."""
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        for piece in self.pieces:
            # A big piece goes in slices: asyncio copies twice what the socket does not take at
            # once; a smaller one (the gzip block: 2.4 MB at 281k series) whole, uncopied.
            slices = [piece] if len(piece) <= WHOLE else (
                piece[start : start + SLICE] for start in range(0, len(piece), SLICE))
            for body in slices:
                await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def get_exporter(request: Request) -> Exporter:
    """Return the Exporter the app was built with."""
    exporter: Exporter = request.app.state.exporter
    return exporter


ExporterDep = Annotated[Exporter, Depends(get_exporter)]


def create_app(exporter: Exporter, bridge: Bridge | None = None, web: WebConfig | None = None,
               public: Collection[str] = ("healthz",)) -> FastAPI:
    """Build the FastAPI app around a (started or not) Exporter and the ticket bridge."""
    app = FastAPI(title="bacula-exporter", version=__version__)
    if web is not None:
        app.add_middleware(AccessMiddleware, web=web, public=public)
    app.state.exporter = exporter
    if bridge is not None:
        app.state.bridge = bridge
        app.include_router(receiver_router)
        plain = app.openapi

        def openapi() -> dict[str, Any]:
            """The generated schema, with the receiver's body described (built once)."""
            return app.openapi_schema or document_body(plain())

        app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/metrics")
    def metrics(exp: ExporterDep, request: Request) -> Response:
        """Prometheus exposition of every catalog, gzip-compressed when the scraper accepts it."""
        gzip = "gzip" in request.headers.get("accept-encoding", "")
        headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"} if gzip else {}
        body = exp.stream(gzip)
        if gzip or exp.exposition.plain_kept():
            # A few ready pieces (the block built once per change, the tail): sent as they are.
            return Pieces(list(body), CONTENT_TYPE, headers)
        # Too big to keep as text: inflated piece by piece while it is sent.
        return StreamingResponse(body, media_type=CONTENT_TYPE, headers=headers)

    @app.get("/", response_class=HTMLResponse)
    def status_page(exp: ExporterDep) -> HTMLResponse:
        """Overview of every catalog, client and job for people."""
        exp.refresh()
        expected = [key for p in exp.config.sla.policies for key in p.expected()]
        rows, health = overview(exp.active(), exp.max_age, time.time(), expected)
        nonce = secrets.token_urlsafe(16)
        page = render_page(rows, health, nonce, standby=not exp.leading,
                           live=live_overview(exp.active_directors()))
        return HTMLResponse(page, headers=page_headers(nonce))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness: the process serves HTTP."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(exp: ExporterDep, request: Request) -> JSONResponse:
        """Readiness: the catalogs it serves were polled once (a standby serves none)."""
        code = 200 if exp.ready() else 503
        role = "leader" if exp.leading else "standby"
        body: dict[str, Any] = {"ready": code == 200, "role": role}
        # Answered without credentials (a public /readyz for probes): no names, no errors.
        if not request.scope.get(PUBLIC_SCOPE_KEY):
            body["catalogs"] = {
                p.cfg.name: {"up": p.up, "error": p.error or None} for p in exp.active()
            }
        return JSONResponse(body, status_code=code)

    return app
