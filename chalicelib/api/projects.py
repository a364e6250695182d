"""Projects (seed 002): where stress-test runs are filed."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import Call, endpoint
from chalicelib.schemas_stress import CreateProjectRequest
from chalicelib.schemas_responses_serving import ProjectOut
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/projects", "POST", "Create a project", body=CreateProjectRequest, status=201,
          response=ProjectOut)
def create_project(call: Call) -> dict:
    return services().projects.create_project(call.user, call.body.name, call.body.description)


@endpoint(bp, "/projects", "GET", "Your projects (admins: all)", response=list[ProjectOut])
def list_projects(call: Call) -> list:
    return services().projects.list_projects(call.user)


@endpoint(bp, "/projects/{project_id}", "GET", "One project", response=ProjectOut)
def get_project(call: Call, project_id: str) -> dict:
    return services().projects.get_project(call.user, project_id)
