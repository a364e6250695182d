"""Reading the events published (``GET /events``): admins see everyone's, users their own."""
from __future__ import annotations

from typing import Any, Optional

from chalicelib.entities import User
from chalicelib.entities.events import EventFilters
from chalicelib.errors import Forbidden
from chalicelib.ports import EventPublisher


class EventService:
    def __init__(self, publisher: EventPublisher):
        self._publisher = publisher

    def list_events(self, actor: User, filters: EventFilters, page_token: Optional[str] = None,
                    limit: int = 100) -> dict[str, Any]:
        """A page of events oldest first: ``{"events": [...], "next_page_token": ...}``. The token
        is given even after the last event: asking again with it later returns what came since."""
        if not actor.user_type.is_admin:
            if filters.owner_id not in (None, actor.id):
                raise Forbidden("only admins can read other users' events")
            filters = filters.model_copy(update={"owner_id": actor.id})
        events, token = self._publisher.list_events(filters, page_token, limit)
        return {"events": [e.to_dict() for e in events], "next_page_token": token}


__all__ = ["EventService"]
