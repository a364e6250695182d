"""The service itself, login sessions and API keys."""
from __future__ import annotations

from typing import Any, Optional

from kilele._args import _segment
from kilele._http import HttpClient
from kilele.errors import UnauthorizedError


class AuthMixin(HttpClient):
    """``service_info``, ``login``/``logout``, ``get_current_user`` and API keys."""

    def service_info(self) -> dict[str, Any]:
        """Service name, version and status (``GET /``; needs no login)."""
        return self._request("GET", "/", auth=False)

    # ------------------------------------------------------------------ sessions

    def login(self, email: str, password: str) -> dict[str, Any]:
        """Log in; later calls use the session token (valid one hour). Returns the user."""
        answer = self._request("POST", "/tokens", json={"email": email, "password": password}, auth=False)
        self.token = answer["token"]
        self.token_expires_at = answer.get("expires_at")
        return answer["user"]

    def logout(self) -> Optional[dict[str, Any]]:
        """End the login session (revokes the token on the server, then forgets it)."""
        if not self.token:
            return None
        try:
            return self._request("DELETE", "/tokens/current")
        except UnauthorizedError:  # already expired or revoked: logged out either way
            return {"logged_out": True}
        finally:
            self.token = None
            self.token_expires_at = None

    def get_current_user(self) -> Optional[dict[str, Any]]:
        """The logged-in user (or the owner of the API key); None when not logged in (no login,
        no key, or a session that expired or was revoked), as seed 001 says."""
        if not self.token and not self.api_key and self._signer is None:
            return None
        try:
            return self._request("GET", "/users/me")
        except UnauthorizedError:  # the session expired (or the key was revoked): not logged in
            return None

    # ------------------------------------------------------------------ API keys

    def create_api_key(self, name: str = "default") -> dict[str, Any]:
        """Create an API key for yourself; the answer's ``key`` is shown only this once."""
        return self._request("POST", "/api-keys", json={"name": name})

    def get_api_keys(self) -> list[dict[str, Any]]:
        """Your API keys (ids and names, never the keys)."""
        return self._request("GET", "/api-keys")

    def revoke_api_key(self, key_id: str) -> dict[str, Any]:
        """Revoke one of your API keys by its id."""
        return self._request("DELETE", f"/api-keys/{_segment(key_id)}")
