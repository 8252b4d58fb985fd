"""The serving session: answers equal a brute-force ranking, new events change them, bad
requests name their field, and the event log restores every ingested event."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tgraph.serve as serve
from tgraph.data.queries import Queries
from tgraph.serve import EventLog, RequestError


@pytest.fixture
def session(run_dir):
    return serve.load(run_dir)


@pytest.fixture
def sequence(sequence_run):
    return serve.load(sequence_run)


def _events(session):
    """Every event the session holds, as (user, item, timestamp) arrays in arrival order."""
    index = session.state.index
    users = np.arange(session.n_users)
    recent = index.recent(users, np.full(len(users), np.iinfo(np.int64).max), None)
    query, position = recent.flat()
    return users[query], recent["item"][query, position], recent.time[query, position]


def _brute_scores(session, user, at):
    """Scores from a history gathered by a plain loop over every event (no index)."""
    users, items, times = _events(session)
    model = session.model
    hist = [(t, i) for u, i, t in zip(users, items, times, strict=True) if u == user and t < at]
    hist = [i for _, i in sorted(hist, key=lambda p: p[0])][-model.history_len :]
    pad = model.n_items
    row = hist + [pad] * (model.history_len - len(hist))
    queries = Queries(
        user=torch.tensor([user]),
        timestamp=torch.tensor([at]),
        hist_items=torch.tensor([row]),
        hist_times=torch.zeros(1, model.history_len, dtype=torch.long),
        hist_len=torch.tensor([len(hist)]),
        pad=pad,
    )
    with torch.no_grad():
        return model.full_sort_predict(queries)[0].numpy()


def test_recommend_is_the_top_k_of_a_brute_force_ranking(sequence):
    """SASRec at an earlier and the default time: the top 7 of the scores computed from a
    loop-built history, without the user's seen items."""
    for user in (0, 5, 17):
        last = int(sequence.state.last_time(np.array([user]))[0])
        for at in (last, None):
            rec = sequence.recommend(user, k=7, at=at)
            expected_at = sequence.clock + 1 if at is None else at
            assert rec.at == expected_at
            scores = _brute_scores(sequence, user, expected_at)
            scores[sequence.seen(user)] = -np.inf
            top = np.argsort(-scores, kind="stable")[:7]
            np.testing.assert_allclose(rec.scores, scores[top], rtol=1e-5, atol=1e-6)
            assert not set(rec.items) & set(sequence.seen(user))


def test_exclude_seen_false_keeps_seen_items(session):
    user = 3
    full = session.recommend(user, k=session.n_items, exclude_seen=False)
    assert len(full.items) == session.n_items
    kept = session.recommend(user, k=session.n_items)
    assert set(kept.items) == set(range(session.n_items)) - set(session.seen(user))
    assert np.all(np.diff(full.scores) <= 0)


def test_recommend_many_equals_single_calls(sequence):
    users = [1, 2, 3, 2]
    many = sequence.recommend_many(users, k=5)
    for rec, user in zip(many, users, strict=True):
        single = sequence.recommend(user, k=5)
        assert rec.user == user
        np.testing.assert_array_equal(rec.items, single.items)


def test_new_events_change_the_answer(sequence):
    """A sequence model's history moves with ingested events: the next answer differs, and
    equals the brute-force ranking over the grown event list."""
    user = 4
    before = sequence.recommend(user, k=10)
    n = sequence.n_events
    new = [
        {"user": user, "item": int(item), "timestamp": sequence.clock + 60 * (j + 1)}
        for j, item in enumerate(before.items[:3])
    ]
    assert sequence.ingest(new) == 3
    assert sequence.n_events == n + 3
    after = sequence.recommend(user, k=10)
    assert after.at == new[-1]["timestamp"] + 1
    assert not np.array_equal(before.items, after.items)
    assert set(before.items[:3]) <= set(sequence.seen(user))
    scores = _brute_scores(sequence, user, after.at)
    scores[sequence.seen(user)] = -np.inf
    np.testing.assert_allclose(after.scores, np.sort(scores)[::-1][:10], rtol=1e-5, atol=1e-6)


def test_new_users_and_items_grow_an_updatable_model(session):
    """BPR-MF takes the next free codes as new users and items (its cold start)."""
    assert session.model.supports_update
    users, items = session.n_users, session.n_items
    t = session.clock + 10
    session.ingest(
        [
            {"user": users, "item": 0, "timestamp": t},
            {"user": users, "item": items, "timestamp": t + 1},
        ]
    )
    assert (session.n_users, session.n_items) == (users + 1, items + 1)
    rec = session.recommend(users, k=5)
    assert len(rec.items) == 5 and not {0, items} & set(rec.items)


@pytest.mark.parametrize(
    ("call", "field", "status"),
    [
        (lambda s: s.recommend(10_000), "user", 404),
        (lambda s: s.recommend(-1), "user", 404),
        (lambda s: s.recommend(0, k=0), "k", 422),
        (lambda s: s.recommend(0, k=-3), "k", 422),
        (lambda s: s.recommend(0, k=2.5), "k", 422),
        (lambda s: s.recommend(0, at=0), "at", 422),
        (
            lambda s: s.ingest([{"user": 0, "item": 1, "timestamp": 5, "rating": 3}]),
            "events[0].rating",
            422,
        ),
        (lambda s: s.ingest([{"user": "0", "item": 1, "timestamp": 5}]), "events[0].user", 422),
        (lambda s: s.ingest([{"user": 0, "item": 1.5, "timestamp": 5}]), "events[0].item", 422),
        (lambda s: s.ingest([{"user": 0, "item": 1}]), "events[0].timestamp", 422),
        (
            lambda s: s.ingest([_at(s, 0), {**_at(s, 0), "lat": float("nan"), "lon": 0.0}]),
            "events[1].lat",
            422,
        ),
        (lambda s: s.ingest([{**_at(s, 0), "lat": 91.0, "lon": 0.0}]), "events[0].lat", 422),
        (lambda s: s.ingest([{**_at(s, 0), "timestamp": 0}]), "events[0].timestamp", 422),
        (lambda s: s.ingest([_at(s, 0, 9), _at(s, 0, 5)]), "events[1].timestamp", 422),
        (lambda s: s.ingest([{**_at(s, 0), "user": s.n_users + 1}]), "events[0].user", 422),
        (lambda s: s.ingest([{**_at(s, 0), "item": s.n_items + 2}]), "events[0].item", 422),
    ],
)
def test_bad_requests_name_their_field(session, call, field, status):
    n = session.n_events
    with pytest.raises(RequestError) as info:
        call(session)
    assert info.value.field == field
    assert info.value.status == status
    assert str(info.value).startswith(field)
    assert session.n_events == n  # nothing was taken


def _at(session, user, dt=1):
    return {"user": user, "item": 1, "timestamp": session.clock + dt}


def test_a_model_without_updates_refuses_new_codes(sequence, monkeypatch):
    monkeypatch.setattr(type(sequence.model), "supports_update", False)
    with pytest.raises(RequestError, match="cannot take new users") as info:
        sequence.ingest([{**_at(sequence, 0), "user": sequence.n_users}])
    assert info.value.field == "events[0].user"


def test_the_log_restores_every_ingested_event(sequence_run, tmp_path):
    """Ingest with a log, load again from the log: same events, same answers; a torn last
    line (a kill during a write, never acknowledged) is dropped and cut off."""
    path = tmp_path / "events.jsonl"
    first = serve.load(sequence_run, log=path)
    for j in range(3):
        first.ingest([_at(first, j, 10), {**_at(first, 7, 20 + j), "item": j}])
    expected = [first.recommend(u, k=10) for u in (0, 1, 7)]
    first.close()
    with open(path, "ab") as file:
        file.write(b'{"events": [{"user": 1, "it')
    again = serve.load(sequence_run, log=path)
    assert again.n_events == first.n_events and again.clock == first.clock
    for old, user in zip(expected, (0, 1, 7), strict=True):
        np.testing.assert_array_equal(again.recommend(user, k=10).items, old.items)
    assert path.read_bytes().endswith(b"\n")
    assert len(list(EventLog(path).replay())) == 3


def test_a_corrupt_log_line_is_an_error(sequence_run, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"events": []}\nnot json\n{"events": []}\n')
    with pytest.raises(Exception, match="row 2"):
        serve.load(sequence_run, log=path)


def test_load_refuses_an_unfinished_run(tmp_path):
    from tgraph.errors import RunDirError

    with pytest.raises(RunDirError, match="no finished run"):
        serve.load(tmp_path)


def test_events_the_model_refuses_leave_no_trace(sequence_run, tmp_path, monkeypatch):
    """An update that refuses a batch (a heterograph model and a new item, say): 422 naming
    the events, nothing applied, and the batch cut off the log again."""
    path = tmp_path / "events.jsonl"
    session = serve.load(sequence_run, log=path)
    session.ingest([_at(session, 0)])
    size, n = path.stat().st_size, session.n_events

    def refuse(events):
        raise NotImplementedError("cannot place a new item")

    monkeypatch.setattr(session.model, "update", refuse)
    with pytest.raises(RequestError, match="cannot place a new item") as info:
        session.ingest([_at(session, 1, 5)])
    assert info.value.field == "events" and info.value.status == 422
    assert path.stat().st_size == size and session.n_events == n
    session.close()
    assert len(list(EventLog(path).replay())) == 1
