"""What a client may send: the event schema and the request error.

An ingested event is validated like any other input (:mod:`tgraph.data.interactions`): the
fields are fixed (an unknown field is refused), codes and times are integers (``"3"`` and
``2.5`` are refused, not coerced), coordinates are finite and in range. Codes are those of the
run's id maps (``split.train.users`` / ``items``); whether a code is *known* and whether a time
is in order depends on the session's state and is checked by
:meth:`tgraph.serve.session.Session.ingest`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, StrictInt, TypeAdapter, ValidationError

from tgraph.config import StrictModel
from tgraph.errors import TgraphError

__all__ = ["Event", "RequestError", "events_frame"]


class RequestError(TgraphError):
    """A request the session refuses; ``field`` names the offending field and ``status`` is
    the HTTP status the server answers with (404: unknown user, 422: invalid value)."""

    exit_code = 2

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.status = status


#: a code: a non-negative int64
Code = Annotated[StrictInt, Field(ge=0, lt=2**63)]
#: UTC seconds (an int64; the clock's next second must be one too)
Seconds = Annotated[StrictInt, Field(ge=-(2**62), lt=2**62)]


class Event(StrictModel):
    """One interaction: ``user`` did ``item`` at ``timestamp`` (UTC seconds), optionally at
    (``lat``, ``lon``) with the local time ``timestamp + 60 * tz_offset``, in ``trajectory``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: Code
    item: Code
    timestamp: Seconds
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = None
    tz_offset: Annotated[StrictInt, Field(ge=-24 * 60, le=24 * 60)] | None = None
    #: the source's trajectory / session id (models that build trajectories need it when
    #: the run's data has one)
    trajectory: Annotated[str, Field(min_length=1, max_length=256)] | None = None


_EVENTS = TypeAdapter(list[Event])


def events_frame(events: Sequence[Event | dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Validate ``events`` (records, :class:`Event` s or a frame of their columns) and return
    them as a frame (int64 user, item, timestamp; the optional fields given by every event of
    the batch, or by none). Raises :class:`RequestError` naming ``events[i].<field>``."""
    if isinstance(events, pd.DataFrame):
        records = events.to_dict("records")
        for record in records:  # numpy scalars -> python, so strict types accept them
            for key, value in record.items():
                record[key] = value.item() if isinstance(value, np.generic) else value
    else:
        records = [e.model_dump(exclude_none=True) if isinstance(e, Event) else e for e in events]
    try:
        parsed = _EVENTS.validate_python(records)
    except ValidationError as error:
        raise request_error(error, "events") from None
    columns: dict[str, np.ndarray] = {
        name: np.array([getattr(e, name) for e in parsed], dtype=np.int64)
        for name in ("user", "item", "timestamp")
    }
    optional = (("lat", np.float64), ("lon", np.float64), ("tz_offset", np.int64))
    for name, dtype in (*optional, ("trajectory", object)):
        values = [getattr(e, name) for e in parsed]
        given = [v is not None for v in values]
        if parsed and all(given):
            columns[name] = np.array(values, dtype=dtype)
        elif any(given):
            row = given.index(False)
            raise RequestError(f"events[{row}].{name}", f"give {name} for every event or none")
    return pd.DataFrame(columns)


def request_error(error: ValidationError, prefix: str) -> RequestError:
    """The first problem of a pydantic ``error`` as a :class:`RequestError` whose field is
    its location below ``prefix`` (``events[3].lat``)."""
    first = error.errors()[0]
    field = prefix
    for part in first["loc"]:
        field += f"[{part}]" if isinstance(part, int) else f".{part}"
    return RequestError(field, first["msg"])
