"""Projects (seed 002): where stress-test runs are filed."""
from __future__ import annotations

from typing import Optional

from kilele._args import _segment
from kilele._http import HttpClient
from kilele.stress import Project


class ProjectsMixin(HttpClient):
    """``create_project``, ``get_project`` and ``list_projects``."""

    def create_project(self, name: str, description: Optional[str] = None) -> Project:
        """Create a project; its ``project_id`` goes to ``start_stress_test`` and
        ``list_stress_test_jobs``. A second project of yours with the same name is a 409."""
        body = {"name": name} if description is None else {"name": name, "description": description}
        return Project.from_dict(self._request("POST", "/projects", json=body))

    def get_project(self, project_id: str) -> Project:
        """One of your projects (admins: anyone's) by id."""
        return Project.from_dict(self._request("GET", f"/projects/{_segment(project_id)}"))

    def list_projects(self) -> list[Project]:
        """Your projects (admins: everyone's)."""
        return [Project.from_dict(p) for p in self._request("GET", "/projects")]
