"""Sessions and API keys: who is calling."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any, Optional

from chalicelib.entities import ApiKey, Session, User
from chalicelib.errors import InvalidInput, NotFound, Unauthenticated
from chalicelib.permissions import Action, require
from chalicelib.services import Clock, new_id, utc_now
from chalicelib.ports import ApiKeyStore, PasswordHasher, SessionStore, UserStore

API_KEY_PREFIX = "kk_"
# A fixed argon2 hash to verify against when the email is unknown, so that a wrong email
# costs as long as a wrong password and does not reveal which emails exist.
_DUMMY_PASSWORD = "not-a-real-password"


def _digest(secret: str) -> str:
    # Tokens and key secrets are 256-bit random values: a plain SHA-256 is enough to store them
    # (a slow hash protects only low-entropy secrets such as passwords).
    return hashlib.sha256(secret.encode()).hexdigest()


class AuthService:
    def __init__(
        self,
        users: UserStore,
        sessions: SessionStore,
        api_keys: ApiKeyStore,
        hasher: PasswordHasher,
        session_ttl_seconds: int,
        clock: Clock = utc_now,
    ):
        self._users = users
        self._sessions = sessions
        self._api_keys = api_keys
        self._hasher = hasher
        self._ttl = timedelta(seconds=session_ttl_seconds)
        self._clock = clock
        self._dummy_hash = hasher.hash(_DUMMY_PASSWORD)

    def login(self, email: str, password: str) -> dict[str, Any]:
        """A new session token for valid, unbanned credentials (valid ``session_ttl_seconds``)."""
        user = self._users.get(email)
        valid = self._hasher.verify(user.password_hash if user else self._dummy_hash, password)
        if not user or not valid:
            raise Unauthenticated("wrong email or password")
        if user.is_banned:
            raise Unauthenticated(f"user {email!r} is banned")
        token = secrets.token_urlsafe(32)
        now = self._clock()
        # Whole seconds: the store keeps the expiry as epoch seconds (DynamoDB TTL), so the
        # expiry announced to the client is exactly the one enforced.
        expires_at = (now + self._ttl).replace(microsecond=0)
        session = Session(_digest(token), user.email, now, expires_at)
        self._sessions.add(session)
        return {"token": token, "expires_at": session.expires_at.isoformat(), "user": user.to_dict()}

    def logout(self, token: Optional[str]) -> dict[str, Any]:
        """Revoke the session token the request carried."""
        if not token:
            raise InvalidInput("logout needs the session token (Authorization: Bearer <token>), not an API key")
        self._sessions.delete(_digest(token))
        return {"logged_out": True}

    def authenticate(self, bearer_token: Optional[str], api_key: Optional[str]) -> User:
        """The user behind a session token or an API key; banned users are refused at once."""
        if bearer_token:
            session = self._sessions.get_live(_digest(bearer_token), self._clock())
            if not session:
                raise Unauthenticated("the session token is invalid or has expired; log in again")
            user = self._users.get(session.user_email)
        elif api_key:
            user = self._user_of_api_key(api_key)
        else:
            raise Unauthenticated("send 'Authorization: Bearer <session token>' or 'x-api-key: <key>'")
        if not user:
            raise Unauthenticated("the credentials belong to no user")
        if user.is_banned:
            raise Unauthenticated(f"user {user.email!r} is banned")
        return user

    def _user_of_api_key(self, api_key: str) -> Optional[User]:
        key_id, _, secret = api_key.removeprefix(API_KEY_PREFIX).partition(".")
        stored = self._api_keys.get(key_id) if key_id and secret else None
        if not stored or not hmac.compare_digest(stored.secret_hash, _digest(secret)):
            raise Unauthenticated("the API key is invalid or has been revoked")
        return self._users.get(stored.owner_email)

    def create_api_key(self, actor: User, name: str) -> dict[str, Any]:
        """A new API key for ``actor``; the key itself is returned only this once."""
        require(actor, Action.MANAGE_API_KEYS)
        key_id = new_id().replace("-", "")
        secret = secrets.token_urlsafe(32)
        key = ApiKey(key_id, actor.email, name, _digest(secret), self._clock())
        self._api_keys.add(key)
        return {**key.to_dict(), "key": f"{API_KEY_PREFIX}{key_id}.{secret}"}

    def list_api_keys(self, actor: User) -> list[dict[str, Any]]:
        require(actor, Action.MANAGE_API_KEYS)
        return [k.to_dict() for k in self._api_keys.list_by_owner(actor.email)]

    def revoke_api_key(self, actor: User, key_id: str) -> dict[str, Any]:
        require(actor, Action.MANAGE_API_KEYS)
        key = self._api_keys.get(key_id)
        if not key or key.owner_email != actor.email:
            raise NotFound(f"you have no API key {key_id!r}")
        self._api_keys.delete(key_id, actor.email)
        return {**key.to_dict(), "revoked": True}
