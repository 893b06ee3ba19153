"""The /metrics response of ready pieces: every byte once, in order, with its length."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.testclient import TestClient

from exporter.web.app import SLICE, WHOLE, Pieces


def test_pieces_arrive_whole_and_in_order() -> None:
    """Small and big pieces (sliced) make exactly their concatenation, with Content-Length."""
    pieces = [b"head", bytes(range(256)) * ((WHOLE + 3 * SLICE) // 256 + 7), b"", b"tail"]

    def route(request: Request) -> Pieces:
        return Pieces(pieces, "text/plain", {"Vary": "Accept-Encoding"})

    response = TestClient(Starlette(routes=[Route("/", route)])).get("/")
    assert response.content == b"".join(pieces)
    assert response.headers["content-length"] == str(len(b"".join(pieces)))
    assert response.headers["vary"] == "Accept-Encoding"
