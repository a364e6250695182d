"""Helpers and sample files for the API tests (fixtures live in conftest.py)."""
from __future__ import annotations

import base64
import io
import json
import zipfile
from typing import Any, Optional

from PIL import Image

SUPERADMIN = ("superadmin@kilele", "kilele")  # seeded by the platform, not through the API's password policy
# What the tests' users get: strong enough for the password policy (zxcvbn score >= 3, >= 8 characters).
PASSWORD = "Tr4in-the-Model!"


class Api:
    """A small JSON client over Chalice's test client."""

    def __init__(self, client: Any, email: Optional[str] = None):
        self._client = client
        self.email = email  # of the logged-in user, if any
        self.headers: dict[str, str] = {}

    def call(self, method: str, path: str, body: Any = None, headers: Optional[dict] = None, raw: Optional[bytes] = None):
        all_headers = {"Content-Type": "application/json", **self.headers, **(headers or {})}
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = self._client.http.request(method, path, headers=all_headers, body=payload)
        try:
            response.data = json.loads(response.body) if response.body else None
        except ValueError:
            response.data = response.body
        return response

    def login(self, email: str, password: str) -> "Api":
        response = self.call("POST", "/tokens", {"email": email, "password": password})
        assert response.status_code == 200, response.data
        other = Api(self._client, email)
        other.headers = {"Authorization": f"Bearer {response.data['token']}"}
        return other

    def anonymous(self) -> "Api":
        return Api(self._client)

    def user(self, email: str, user_type: str, password: str = PASSWORD) -> "Api":
        response = self.call("POST", "/users", {"email": email, "password": password, "user_type": user_type})
        assert response.status_code == 201, response.data
        return self.login(email, password)

TABULAR_CSV = b"x1,x2,target\n1,2,a\n3,4,b\n5,6,a\n"
REGRESSION_CSV = b"x1,x2,y\n1,2,0.5\n3,4,1.5\n"

MODEL_SOURCE = b'''from kilele.model import BaseModel


class MyModel(BaseModel):
    def train(self, dataset_path, **train_args):
        pass
'''


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(size: tuple[int, int] = (8, 8), color: int = 128) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def image_zip(classes: tuple[int, ...] = (0, 1, 0)) -> bytes:
    """A valid IMAGE_CLASSIFICATION archive: one 8x8 PNG per class label."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        rows = ["path,class"]
        for number, label in enumerate(classes):
            archive.writestr(f"images/{number}.png", png())
            rows.append(f"images/{number}.png,{label}")
        archive.writestr("images.csv", "\n".join(rows) + "\n")
    return buffer.getvalue()


def assert_error(response: Any, status: int, code: str, *phrases: str) -> str:
    """Check an error answer: the status, the JSON shape ``{"error": {"code", "message"}}``,
    the code, and that the message contains each phrase. Returns the message."""
    assert response.status_code == status, (response.status_code, response.data)
    assert isinstance(response.data, dict) and set(response.data) == {"error"}, response.data
    error = response.data["error"]
    assert set(error) == {"code", "message"}, error
    assert error["code"] == code, error
    for phrase in phrases:
        assert phrase in error["message"], (phrase, error["message"])
    return error["message"]
