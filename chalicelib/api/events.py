"""Events (issue 12): every job's state changes and monitor breaches, as published (oldest first)."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import Call, endpoint
from chalicelib.schemas_events import EventsQuery
from chalicelib.schemas_responses import EventsOut
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/events", "GET", "Job state changes and monitor breaches, oldest first, in pages (admins: "
          "everyone's; others: their own)", query=EventsQuery, response=EventsOut)
def list_events(call: Call) -> dict:
    query = call.query
    return services().events.list_events(call.user, query.filters(), query.page_token, query.limit)
