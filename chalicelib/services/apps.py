"""Applications (Clipper's): input type, latency SLO, default output, top-N, and the version
they serve, switched and rolled back atomically.

Predict learns the app and the ids of its live inference jobs from the app's row
(:meth:`ApplicationService.serving_state`, one consistent read). A switch, rollback, update or
deletion is a write to that row, so the very next request sees it, and no request is dropped
by a switch; when that read may be cached, and when not, is services/serving_cache.py's rule."""
from __future__ import annotations

from typing import Any, Optional

from chalicelib.entities import Application, InputType, User
from chalicelib.errors import Conflict, NotFound
from chalicelib.permissions import Action, require
from chalicelib.services import Clock, utc_now
from chalicelib.services.inference_jobs import InferenceJobService
from chalicelib.services.train_jobs import LATEST
from chalicelib.ports import ApplicationStore, ServingState

_SWITCH_ATTEMPTS = 5


class ApplicationService:
    def __init__(self, apps: ApplicationStore, inference: InferenceJobService, clock: Clock = utc_now):
        self._apps = apps
        self._inference = inference
        self._clock = clock

    def register_application(
        self, actor: User, name: str, input_type: InputType, default_output: Any, slo_micros: int,
        top_n: Optional[int] = None, capture_percent: Optional[float] = None,
    ) -> dict[str, Any]:
        """Register an app; ``capture_percent``: the share of its predict requests captured
        (services/capture.py; default 0, off)."""
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        app = Application(actor.id, name, self._clock(), input_type, default_output, slo_micros, top_n,
                          capture_percent=capture_percent or 0.0)
        self._apps.add(app)
        return app.to_dict()

    def update_application(self, actor: User, name: str, **changes: Any) -> dict[str, Any]:
        """Change SLO, default output, input type, top-N or capture percentage (None values are
        left as they are)."""
        app = self._get(actor, name)
        for key, value in changes.items():
            if value is not None:
                setattr(app, key, value)
        self._apps.save(app)
        return app.to_dict()

    def get_application(self, actor: User, name: str) -> dict[str, Any]:
        app = self._get(actor, name)
        data = app.to_dict()
        try:
            data["serving_version"] = self._inference.running_job(actor.id, name, app.version or -1).app_version
        except NotFound:
            data["serving_version"] = None
        return data

    def get_applications(self, actor: User) -> list[dict[str, Any]]:
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        return [a.to_dict() for a in self._apps.list_of_user(actor.id)]

    def delete_application(self, actor: User, name: str) -> dict[str, Any]:
        app = self._get(actor, name)
        self._apps.delete(actor.id, name)
        return app.to_dict()

    def set_model_version(self, actor: User, name: str, version: int) -> dict[str, Any]:
        """Serve ``version`` (it needs a running inference job); the current one is kept for rollback."""
        self._inference.running_job(actor.id, name, version)  # NotFound if not deployed
        return self._switch(actor, name, lambda app: version)

    def rollback(self, actor: User, name: str) -> dict[str, Any]:
        """Serve the version served before the last switch again."""
        def previous(app: Application) -> Optional[int]:
            if app.previous_version is None:
                raise Conflict(f"application {name!r} has no previous version to roll back to")
            if app.previous_version == LATEST:
                return None
            self._inference.running_job(actor.id, name, app.previous_version)
            return app.previous_version

        return self._switch(actor, name, previous)

    def _switch(self, actor: User, name: str, target: Any) -> dict[str, Any]:
        for _ in range(_SWITCH_ATTEMPTS):
            app = self._get(actor, name)
            version = target(app)
            if self._apps.switch_version(actor.id, name, version, expected=app.version):
                return self._get(actor, name).to_dict()
        raise Conflict(f"application {name!r} was switched concurrently; try again")

    def find(self, user_id: str, name: str) -> Optional[Application]:
        return self._apps.get(user_id, name)

    def serving_state(self, user_id: str, name: str) -> ServingState:
        """The app (None if unregistered) and its live inference jobs: the predict path's read."""
        return self._apps.serving_state(user_id, name)

    def _get(self, actor: User, name: str) -> Application:
        require(actor, Action.MANAGE_INFERENCE_JOBS)
        app = self._apps.get(actor.id, name)
        if app is None:
            raise NotFound(f"no application {name!r}; register it first")
        return app
