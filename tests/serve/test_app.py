"""The HTTP layer in-process (FastAPI's TestClient): answers, errors naming their field,
the access token and the size limits."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
from fastapi.testclient import TestClient  # noqa: E402

import tgraph.serve as serve  # noqa: E402
from tgraph.serve.app import create_app  # noqa: E402


@pytest.fixture
def session(sequence_run):
    return serve.load(sequence_run)


@pytest.fixture
def client(session):
    return TestClient(create_app(session, max_body=4096, max_batch=5))


def _event(session, user=0, dt=1, **extra):
    return {"user": user, "item": 1, "timestamp": session.clock + dt, **extra}


def test_recommend_ingest_and_health(client, session):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["events"] == session.n_events
    first = client.get("/recommend", params={"user": 2, "k": 5}).json()
    assert first == session.recommend(2, k=5).to_dict() and len(first["items"]) == 5
    items = first["items"][:2]
    body = [_event(session, 2, 10, item=items[0]), _event(session, 2, 20, item=items[1])]
    response = client.post("/events", json=body)
    assert response.status_code == 200
    assert response.json() == {"ingested": 2, "events": health["events"] + 2}
    second = client.get("/recommend", params={"user": 2, "k": 5}).json()
    assert second["items"] != first["items"] and not set(items) & set(second["items"])
    at = second["at"] + 100
    later = client.get("/recommend", params={"user": 2, "k": 3, "at": at, "exclude_seen": False})
    assert later.json()["at"] == at and len(later.json()["items"]) == 3


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"user": 10_000}, 404, "user"),
        ({"user": 0, "k": -1}, 422, "k"),
        ({"user": 0, "k": "ten"}, 422, "k"),
        ({"user": 0, "at": 0}, 422, "at"),
        ({"user": 0, "at": "noon"}, 422, "at"),
        ({"k": 3}, 422, "user"),
        ({"user": 2**70}, 422, "user"),
        ({"user": 0, "at": 2**70}, 422, "at"),
    ],
)
def test_bad_recommend_requests(client, params, status, field):
    response = client.get("/recommend", params=params)
    assert response.status_code == status
    assert response.json()["field"] == field
    assert field in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"[{", 400, "body"),
        (b'{"user": 0}', 422, "body"),
        (b'[{"user": 0, "item": 1, "timestamp": 5, "extra": 1}]', 422, "events[0].extra"),
        (b'[{"user": 0, "item": "1", "timestamp": 5}]', 422, "events[0].item"),
        (b'[{"user": 0, "item": 1, "timestamp": 5, "lat": NaN, "lon": 1.0}]', 422, "events[0].lat"),
        (b'[{"user": 0, "item": 1, "timestamp": 5}]', 422, "events[0].timestamp"),
        (b'[{"user": 0, "item": 1, "timestamp": 1e400}]', 422, "events[0].timestamp"),
        (b'[{"user": 0, "item": 99999999999999999999999, "timestamp": 5}]', 422, "events[0].item"),
        (json.dumps([{"user": 0, "item": 1, "timestamp": 1}] * 6).encode(), 413, "body"),
        (b"[" + b" " * 5000 + b"]", 413, "body"),
    ],
)
def test_bad_event_requests(client, session, body, status, field):
    n = session.n_events
    response = client.post("/events", content=body)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    assert session.n_events == n


def test_a_body_over_the_limit_without_content_length_is_refused(client):
    def chunks():
        for _ in range(10):
            yield b" " * 1000

    response = client.post("/events", content=chunks())
    assert response.status_code == 413


def test_the_token_is_checked_on_every_request(session):
    client = TestClient(create_app(session, token="s3cret"))
    for method, path in (("get", "/health"), ("get", "/recommend?user=0"), ("post", "/events")):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = client.request(method, path, headers=headers, json=[])
            assert response.status_code == 401, (path, headers)
            assert response.json()["field"] == "authorization"
    ok = {"Authorization": "Bearer s3cret"}
    assert client.get("/health", headers=ok).status_code == 200
    assert client.get("/recommend?user=0", headers=ok).status_code == 200
    assert client.post("/events", headers=ok, json=[]).json()["ingested"] == 0


def test_binding_beyond_loopback_needs_a_token(session, run_dir, monkeypatch):
    from tgraph.cli import main
    from tgraph.serve.app import TOKEN_ENV
    from tgraph.serve.app import serve as run_server

    with pytest.raises(ValueError, match="access token"):
        run_server(session, "0.0.0.0", 1)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert main(["serve", str(run_dir), "--host", "0.0.0.0", "--port", "1"]) == 2
