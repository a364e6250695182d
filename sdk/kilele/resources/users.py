"""Users (admins manage them)."""
from __future__ import annotations

from typing import Any, Optional

from kilele._args import StrOrEnum, _enum_value
from kilele._http import HttpClient


class UsersMixin(HttpClient):
    """``create_user``, ``get_users``, ``ban_user`` and ``get_audit_events``."""

    def create_user(self, email: str, password: str, user_type: StrOrEnum) -> dict[str, Any]:
        """Create a user (admins; only a superadmin creates admins). Returns the user.

        The password must pass the platform's policy (8+ characters, a zxcvbn strength score of
        3 or more by default); a weak one raises :class:`~kilele.errors.BadRequestError` saying why."""
        body = {"email": email, "password": password, "user_type": _enum_value(user_type)}
        return self._request("POST", "/users", json=body)

    def get_users(self) -> list[dict[str, Any]]:
        """List all users (admins only)."""
        return self._request("GET", "/users")

    def ban_user(self, email: str) -> dict[str, Any]:
        """Ban a user: logins, sessions and API keys stop working. Irreversible."""
        return self._request("POST", "/users/ban", json={"email": email})

    def link_iam_principal(self, email: str, principal_arn: str) -> dict[str, Any]:
        """Let an IAM user or role act as user ``email`` when it signs its requests (admins).

        ``principal_arn``: ``arn:aws:iam::<account>:user/<name>``, ``...:role/<name>``, or an
        assumed-role session ARN (its role is linked). Returns the user, ``iam_principals``
        included."""
        return self._request("POST", "/users/iam-principals", json={"email": email, "principal_arn": principal_arn})

    def unlink_iam_principal(self, email: str, principal_arn: str) -> dict[str, Any]:
        """Stop an IAM user or role from acting as user ``email`` (admins)."""
        return self._request("POST", "/users/iam-principals/unlink", json={"email": email, "principal_arn": principal_arn})

    def get_audit_events(self, limit: int = 50, page_token: Optional[str] = None) -> dict[str, Any]:
        """One page of the audit log, newest first (admins): logins (succeeded, failed, locked
        out) and API key creations and revocations, each with ``email``, ``datetime``,
        ``source_ip``, ``outcome`` and ``details``. Returns ``{"events": [...],
        "next_page_token": ...}``; pass the token back for the next page (None on the last)."""
        return self._request("GET", "/audit-events", params={"limit": limit, "page_token": page_token})
