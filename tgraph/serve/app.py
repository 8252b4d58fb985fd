"""HTTP in front of a :class:`~tgraph.serve.session.Session` (FastAPI; ``tgraph serve``).

Endpoints::

    GET  /recommend?user=U&k=10&at=T&exclude_seen=true  -> {"user", "at", "items", "scores"}
    POST /events   body: a JSON list of events            -> {"ingested": n, "events": total}
    GET  /health                                          -> {"status": "ok", "events", ...}

Errors are JSON ``{"detail": message, "field": name}``: 400 for a body that is not JSON, 401
without the access token (when one is set), 404 for an unknown user, 413 for a body over
``max_body`` bytes or a batch over ``max_batch`` events, 422 for any invalid value (a
negative ``k``, a time before the user's latest event, an unknown event field, a wrong type, a
NaN coordinate). An answer to ``POST /events`` is sent only after the events are in the
event log on disk (fsync): an acknowledged event survives a killed server.

The token (``Authorization: Bearer <token>``) is checked on every request, ``/health``
included, in constant time. :func:`serve` refuses to bind an address other than loopback
without one.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tgraph.serve.events import RequestError
from tgraph.serve.session import Session

__all__ = ["LOOPBACK", "TOKEN_ENV", "create_app", "serve"]

#: the environment variable ``tgraph serve`` reads the access token from
TOKEN_ENV = "TGRAPH_SERVE_TOKEN"
#: addresses that only this machine can reach: no token needed
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def _error(
    status: int, field: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": message, "field": field}, status_code=status, headers=headers)


class _Guard:
    """ASGI middleware: the bearer token on every request, and ``Content-Length`` within
    ``max_body`` (the body itself is counted again while it is read)."""

    def __init__(self, app: ASGIApp, token: str | None, max_body: int) -> None:
        self.app, self.max_body = app, max_body
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.expected is not None and not secrets.compare_digest(
            headers.get(b"authorization", b""), self.expected
        ):
            message = "authorization: missing or wrong access token (Authorization: Bearer ...)"
            response = _error(401, "authorization", message, {"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            response = _error(413, "body", f"body: limited to {self.max_body} bytes")
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


def create_app(
    session: Session,
    *,
    token: str | None = None,
    max_body: int = 1 << 20,
    max_batch: int = 10_000,
) -> FastAPI:
    """The FastAPI application serving ``session`` (module docstring)."""
    app = FastAPI(title="tgraph serve", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, error: RequestError) -> JSONResponse:
        return _error(error.status, error.field, str(error))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"][1:]) or str(first["loc"][0])
        return _error(422, field, f"{field}: {first['msg']}")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return session.health()

    @app.get("/recommend")
    def recommend(
        user: int = Query(..., gt=-(2**62), lt=2**62),
        k: int = Query(10),
        at: int | None = Query(None, gt=-(2**62), lt=2**62),
        exclude_seen: bool = Query(True),
    ) -> dict[str, Any]:
        return session.recommend(user, k, at, exclude_seen).to_dict()

    @app.post("/events")
    async def events(request: Request) -> Any:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                return _error(413, "body", f"body: limited to {max_body} bytes")
        try:
            records = json.loads(body)
        except ValueError as error:
            return _error(400, "body", f"body: malformed JSON ({error})")
        if not isinstance(records, list):
            return _error(422, "body", "body: send a JSON list of events")
        if len(records) > max_batch:
            return _error(413, "body", f"body: at most {max_batch} events per request")
        n = await run_in_threadpool(session.ingest, records)
        return {"ingested": n, "events": session.n_events}

    app.add_middleware(_Guard, token=token, max_body=max_body)
    return app


def serve(
    session: Session,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    token: str | None = None,
    max_body: int = 1 << 20,
    max_batch: int = 10_000,
) -> None:
    """Serve ``session`` with uvicorn until interrupted; a host other than loopback needs a
    ``token`` (:class:`ValueError` otherwise)."""
    import uvicorn

    if host not in LOOPBACK and not token:
        raise ValueError(
            f"binding {host} exposes the server beyond this machine: give an access token "
            f"(--token or ${TOKEN_ENV})"
        )
    app = create_app(session, token=token, max_body=max_body, max_batch=max_batch)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
