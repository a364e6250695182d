"""Client calls: URLs, bodies, auth headers and results, against a fake API."""
from __future__ import annotations

import base64

import pytest

from kilele import Client
from kilele.constants import ModelAccessRight, Task, UserType
from kilele.errors import NotFoundError

USER = {"id": "u-1", "email": "superadmin@kilele", "user_type": "SUPERADMIN",
        "datetime_created": "2026-11-23T10:00:00+00:00", "banned_date": None}
MODEL = {"id": "m-1", "name": "logreg", "task": "TABULAR_CLASSIFICATION", "model_class": "LogReg",
         "user_id": "u-1", "access_right": "PRIVATE", "dependencies": {}, "docker_image": None}


def test_base_url_from_host_and_port_or_explicit():
    assert Client().base_url == "http://127.0.0.1:8000"
    assert Client("10.0.0.5", 3000).base_url == "http://10.0.0.5:3000"
    explicit = Client("ignored", 1, base_url="https://abc.execute-api.eu-west-1.amazonaws.com/api/")
    assert explicit.base_url == "https://abc.execute-api.eu-west-1.amazonaws.com/api"


def test_base_url_path_prefix_is_kept(server):
    server.route("GET", "/api/", 200, {"service": "kilele", "version": "0.1.0", "status": "ok"})
    assert Client(base_url=server.url + "/api").service_info()["service"] == "kilele"
    assert server.last().path == "/api/"


def test_service_info_sends_no_credentials(server):
    server.route("GET", "/", 200, {"service": "kilele", "version": "0.1.0", "status": "ok"})
    client = Client(base_url=server.url, api_key="kk_x.y")
    assert client.service_info() == {"service": "kilele", "version": "0.1.0", "status": "ok"}
    assert "x-api-key" not in server.last().headers


def test_login_stores_token_and_sends_bearer(server):
    server.route("POST", "/tokens", 200, {"token": "tok-123", "expires_at": "2026-11-23T11:00:00+00:00", "user": USER})
    server.route("GET", "/users/me", 200, USER)
    client = Client(base_url=server.url)
    assert client.get_current_user() is None  # not logged in, no key: no call
    assert server.requests == []

    user = client.login("superadmin@kilele", "kilele")

    assert user == USER
    assert client.token == "tok-123"
    assert server.last("POST", "/tokens").json() == {"email": "superadmin@kilele", "password": "kilele"}
    assert "authorization" not in server.last("POST", "/tokens").headers
    assert client.get_current_user() == USER
    assert server.last("GET", "/users/me").headers["authorization"] == "Bearer tok-123"


def test_api_key_header(server):
    server.route("GET", "/users/me", 200, USER)
    client = Client(base_url=server.url, api_key="kk_abc.secret")
    assert client.get_current_user() == USER
    headers = server.last().headers
    assert headers["x-api-key"] == "kk_abc.secret"
    assert "authorization" not in headers


def test_session_token_wins_over_api_key(server):
    server.route("GET", "/users", 200, [USER])
    Client(base_url=server.url, api_key="kk_abc.secret", token="tok-9").get_users()
    headers = server.last().headers
    assert headers["authorization"] == "Bearer tok-9"
    assert "x-api-key" not in headers


def test_logout_revokes_and_forgets_token(server):
    server.route("DELETE", "/tokens/current", 200, {"logged_out": True})
    client = Client(base_url=server.url, token="tok-1")
    assert client.logout() == {"logged_out": True}
    assert server.last().headers["authorization"] == "Bearer tok-1"
    assert client.token is None
    assert client.logout() is None  # nothing to do
    assert len(server.requests) == 1


def test_logout_with_expired_token_still_forgets_it(server):
    server.route("DELETE", "/tokens/current", 401, {"error": {"code": "unauthenticated", "message": "expired"}})
    client = Client(base_url=server.url, token="old")
    assert client.logout() == {"logged_out": True}
    assert client.token is None


def test_users_calls(server):
    server.route("POST", "/users", 201, {**USER, "email": "dev@x", "user_type": "MODEL_DEVELOPER"})
    server.route("GET", "/users", 200, [USER])
    server.route("POST", "/users/ban", 200, {**USER, "banned_date": "2026-11-23T12:00:00+00:00"})
    client = Client(base_url=server.url, token="t")

    created = client.create_user("dev@x", "secret1", UserType.MODEL_DEVELOPER)
    assert created["user_type"] == "MODEL_DEVELOPER"
    assert server.last("POST", "/users").json() == {"email": "dev@x", "password": "secret1", "user_type": "MODEL_DEVELOPER"}
    client.create_user("app@x", "secret1", "app_developer")  # plain (even lower-case) strings work
    assert server.last("POST", "/users").json()["user_type"] == "APP_DEVELOPER"

    assert client.get_users() == [USER]
    assert client.ban_user("dev@x")["banned_date"]
    assert server.last("POST", "/users/ban").json() == {"email": "dev@x"}


def test_api_key_calls(server):
    key = {"id": "k1", "name": "ci", "datetime_created": "2026-11-23T10:00:00+00:00"}
    server.route("POST", "/api-keys", 201, {**key, "key": "kk_k1.s"})
    server.route("GET", "/api-keys", 200, [key])
    server.route("DELETE", "/api-keys/k1", 200, {**key, "revoked": True})
    client = Client(base_url=server.url, token="t")
    assert client.create_api_key("ci")["key"] == "kk_k1.s"
    assert server.last("POST", "/api-keys").json() == {"name": "ci"}
    client.create_api_key()
    assert server.last("POST", "/api-keys").json() == {"name": "default"}
    assert client.get_api_keys() == [key]
    assert client.revoke_api_key("k1")["revoked"] is True


def test_create_model_sends_base64_file_and_fields(server, tmp_path):
    source = b"from kilele.model import BaseModel\n\nclass LogReg(BaseModel):\n    pass\n"
    model_file = tmp_path / "logreg.py"
    model_file.write_bytes(source)
    server.route("POST", "/models", 201, MODEL)
    client = Client(base_url=server.url, token="t")

    assert client.create_model("logreg", Task.TABULAR_CLASSIFICATION, str(model_file), "LogReg",
                               dependencies={"scikit-learn": "1.5.2"}) == MODEL
    body = server.last("POST", "/models").json()
    assert base64.b64decode(body.pop("model_file_base64")) == source
    assert body == {"name": "logreg", "task": "TABULAR_CLASSIFICATION", "model_class": "LogReg",
                    "dependencies": {"scikit-learn": "1.5.2"}, "access_right": "PRIVATE"}

    client.create_model("logreg2", "TABULAR_CLASSIFICATION", str(model_file), "LogReg",
                        dependencies=["numpy==2.1.0", "scipy"], access_right=ModelAccessRight.PUBLIC,
                        docker_image="me/worker:1")
    body = server.last("POST", "/models").json()
    assert body["dependencies"] == {"numpy": "2.1.0", "scipy": ""}
    assert body["access_right"] == "PUBLIC"
    assert body["docker_image"] == "me/worker:1"


def test_model_listing_get_and_delete(server):
    server.route("GET", "/models", 200, [MODEL])
    server.route("GET", "/models/m-1", 200, MODEL)
    server.route("DELETE", "/models/m-1", 200, MODEL)
    client = Client(base_url=server.url, token="t")

    assert client.get_available_models() == [MODEL]
    assert server.last().query == {}
    client.get_available_models(task=Task.TABULAR_CLASSIFICATION)
    assert server.last().query == {"task": ["TABULAR_CLASSIFICATION"]}
    assert client.get_model("m-1") == MODEL
    assert client.delete_model("m-1") == MODEL
    assert server.last().method == "DELETE"


def test_download_model_file_writes_file(server, tmp_path):
    source = "class LogReg:\n    'ünïcode'\n"
    server.route("GET", "/models/m-1", 200, MODEL)
    server.route("GET", "/models/m-1/file", 200, source.encode(), {"Content-Type": "text/x-python; charset=utf-8"})
    out = tmp_path / "downloaded.py"

    model = Client(base_url=server.url, token="t").download_model_file("m-1", str(out))

    assert model == MODEL
    assert out.read_text(encoding="utf-8") == source
    assert server.last("GET", "/models/m-1/file").headers["authorization"] == "Bearer t"


def test_download_of_missing_model_writes_nothing(server, tmp_path):
    out = tmp_path / "nothing.py"
    with pytest.raises(NotFoundError):
        Client(base_url=server.url, token="t").download_model_file("nope", str(out))
    assert not out.exists()


def test_ids_are_escaped_in_paths(server):
    with pytest.raises(NotFoundError):
        Client(base_url=server.url, token="t").get_dataset("a/b")
    assert server.last().path == "/datasets/a%2Fb"
