"""Projects through the API (docs/stress-tests-api.md)."""
from __future__ import annotations

from api_support import assert_error


def test_create_list_and_get_a_project(make_user):
    dev = make_user("APP_DEVELOPER")
    created = dev.call("POST", "/projects", {"name": "Titanic", "description": "survival"})
    assert created.status_code == 201, created.data
    project = created.data
    assert set(project) == {"project_id", "name", "description", "owner_id", "created_at"}
    assert (project["name"], project["description"]) == ("Titanic", "survival")
    assert dev.call("GET", "/projects").data == [project]
    assert dev.call("GET", f"/projects/{project['project_id']}").data == project


def test_a_description_is_optional_and_names_are_unique_per_user(make_user):
    alice, bob = make_user("MODEL_DEVELOPER"), make_user("MODEL_DEVELOPER")
    first = alice.call("POST", "/projects", {"name": "p"})
    assert first.status_code == 201 and first.data["description"] == ""
    assert_error(alice.call("POST", "/projects", {"name": "p"}), 409, "conflict", "'p'")
    assert bob.call("POST", "/projects", {"name": "p"}).status_code == 201  # another user's name


def test_bad_bodies_are_400_naming_the_field(make_user):
    dev = make_user("MODEL_DEVELOPER")
    assert_error(dev.call("POST", "/projects", {}), 400, "invalid_input", "name")
    assert_error(dev.call("POST", "/projects", {"name": "p", "colour": "red"}), 400, "invalid_input", "colour")


def test_someone_elses_project_is_404_and_admins_see_all(make_user, superadmin):
    alice, bob = make_user("MODEL_DEVELOPER"), make_user("APP_DEVELOPER")
    project = alice.call("POST", "/projects", {"name": "mine"}).data
    assert_error(bob.call("GET", f"/projects/{project['project_id']}"), 404, "not_found")
    assert bob.call("GET", "/projects").data == []
    assert_error(bob.call("GET", "/projects/nope"), 404, "not_found", "nope")
    assert superadmin.call("GET", f"/projects/{project['project_id']}").data == project
    assert project in superadmin.call("GET", "/projects").data


def test_projects_need_a_signed_in_user(client):
    assert_error(client.anonymous().call("GET", "/projects"), 401, "unauthenticated")
