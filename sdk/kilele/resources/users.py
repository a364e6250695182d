"""Users (admins manage them)."""
from __future__ import annotations

from typing import Any

from kilele._args import StrOrEnum, _enum_value
from kilele._http import HttpClient


class UsersMixin(HttpClient):
    """``create_user``, ``get_users`` and ``ban_user``."""

    def create_user(self, email: str, password: str, user_type: StrOrEnum) -> dict[str, Any]:
        """Create a user (admins; only a superadmin creates admins). Returns the user."""
        body = {"email": email, "password": password, "user_type": _enum_value(user_type)}
        return self._request("POST", "/users", json=body)

    def get_users(self) -> list[dict[str, Any]]:
        """List all users (admins only)."""
        return self._request("GET", "/users")

    def ban_user(self, email: str) -> dict[str, Any]:
        """Ban a user: logins, sessions and API keys stop working. Irreversible."""
        return self._request("POST", "/users/ban", json={"email": email})
