"""Projects (seed 002): a user's folders of stress tests; a ``default`` one made on first use."""
from __future__ import annotations

from typing import Any, Optional

from chalicelib.entities import DEFAULT_PROJECT_NAME, Project, User
from chalicelib.errors import Conflict, NotFound
from chalicelib.permissions import Action, owns_or_admin, require
from chalicelib.ports import ProjectStore
from chalicelib.services import Clock, new_id, utc_now


class ProjectService:
    def __init__(self, projects: ProjectStore, clock: Clock = utc_now):
        self._projects = projects
        self._clock = clock

    def create_project(self, actor: User, name: str, description: Optional[str] = None) -> dict[str, Any]:
        """A new project of the caller; :class:`Conflict` if the caller has one of that name."""
        require(actor, Action.MANAGE_STRESS_TESTS)
        return self._create(actor, name, description or "").to_dict()

    def list_projects(self, actor: User) -> list[dict[str, Any]]:
        """The caller's projects (everyone's for admins), oldest first."""
        require(actor, Action.MANAGE_STRESS_TESTS)
        projects = self._projects.list_all() if actor.user_type.is_admin else self._projects.list_by_owner(actor.id)
        return [p.to_dict() for p in projects]

    def get_project(self, actor: User, project_id: str) -> dict[str, Any]:
        return self.visible(actor, project_id).to_dict()

    def visible(self, actor: User, project_id: str) -> Project:
        """A project the caller may use (their own; any for admins); :class:`NotFound` otherwise."""
        require(actor, Action.MANAGE_STRESS_TESTS)
        project = self._projects.get(project_id)
        if project is None or not owns_or_admin(actor, project.owner_id):
            raise NotFound(f"no project {project_id!r}")
        return project

    def default_project(self, actor: User) -> Project:
        """The caller's project named ``default``, made now if it does not exist yet."""
        require(actor, Action.MANAGE_STRESS_TESTS)
        existing = self._projects.get_by_name(actor.id, DEFAULT_PROJECT_NAME)
        if existing is not None:
            return existing
        try:
            return self._create(actor, DEFAULT_PROJECT_NAME, "made for stress tests that name no project")
        except Conflict:  # made meanwhile by a concurrent request
            made = self._projects.get_by_name(actor.id, DEFAULT_PROJECT_NAME)
            if made is None:
                raise
            return made

    def _create(self, actor: User, name: str, description: str) -> Project:
        project = Project(id=new_id(), owner_id=actor.id, name=name, description=description,
                          created_at=self._clock())
        self._projects.add(project)
        return project


__all__ = ["ProjectService"]
