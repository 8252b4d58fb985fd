"""Real-time recommendation: a trained run answering and taking new events.

``session = tgraph.serve.load(run_dir)``, then ``session.recommend(user, k=10, at=t)``,
``session.recommend_many(users, ...)`` and ``session.ingest(events)``
(:mod:`tgraph.serve.session`); ``tgraph serve RUN_DIR`` puts a session behind HTTP
(:mod:`tgraph.serve.app`, the optional ``serve`` extra: FastAPI and uvicorn).
"""

from tgraph.serve.events import Event, RequestError
from tgraph.serve.log import EventLog
from tgraph.serve.session import Recommendation, Session, load
from tgraph.serve.state import LiveState

__all__ = ["Event", "EventLog", "LiveState", "Recommendation", "RequestError", "Session", "load"]
