"""Sessions and API keys: who is calling.

Authenticated principals are cached in this process for ``cache_seconds`` (the setting
``auth_cache_seconds``, default 5; bounded to ``CACHE_ENTRIES``): a session token (by its
digest) or an API key (by its id, with its secret's digest to compare) maps to its user, so a
request costs no store read while its caller's entry is fresh. What may be stale, and for how
long:

- in this process nothing: ``logout`` and ``revoke_api_key`` drop their entry, and a ban
  (:meth:`AuthService.forget_user`, called by ``UserService.ban_user`` through the wiring) drops
  the user's entries before they return, so the very next request is refused;
- in other processes (other Lambda instances) a logout, revocation or ban takes effect within
  ``cache_seconds``, when their entry expires;
- a session's own expiry is checked on every request, cached or not.

``cache_seconds = 0`` turns the cache off.

Logins go through a :class:`~chalicelib.services.login_throttle.LoginThrottle` (progressive
delays and lockouts, 429 with ``Retry-After``), and logins and API key changes are written to the
audit log (:class:`~chalicelib.services.audit.AuditService`).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional

from chalicelib.entities import ApiKey, AuditEventType, Session, User
from chalicelib.errors import InvalidInput, NotFound, Unauthenticated
from chalicelib.iam_principals import principal_of
from chalicelib.permissions import Action, require
from chalicelib.services import Clock, new_id, utc_now
from chalicelib.services.audit import AuditService
from chalicelib.services.caches import LruCache
from chalicelib.services.login_throttle import LoginThrottle
from chalicelib.ports import ApiKeyStore, PasswordHasher, SessionStore, UserStore

API_KEY_PREFIX = "kk_"
# A fixed argon2 hash to verify against when the email is unknown, so that a wrong email
# costs as long as a wrong password and does not reveal which emails exist.
_DUMMY_PASSWORD = "not-a-real-password"
CACHE_ENTRIES = 10_000


@dataclass(frozen=True)
class _Principal:
    user: User
    fresh_until: datetime  # the cache entry's end
    session_expires_at: Optional[datetime] = None  # sessions: checked on every request
    secret_hash: Optional[str] = None  # API keys: the presented secret must match


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
        throttle: LoginThrottle,
        audit: AuditService,
        clock: Clock = utc_now,
        cache_seconds: float = 0,
    ):
        self._cache_ttl = timedelta(seconds=max(0.0, cache_seconds))
        self._cache: LruCache[_Principal] = LruCache(CACHE_ENTRIES)
        # Bumped by every invalidation: a lookup that began before one does not cache what it read.
        self._epoch = 0
        self._epoch_lock = threading.Lock()
        self._users = users
        self._sessions = sessions
        self._api_keys = api_keys
        self._hasher = hasher
        self._throttle = throttle
        self._audit = audit
        self._ttl = timedelta(seconds=session_ttl_seconds)
        self._clock = clock
        self._dummy_hash = hasher.hash(_DUMMY_PASSWORD)

    def login(self, email: str, password: str, source_ip: Optional[str] = None) -> dict[str, Any]:
        """A new session token for valid, unbanned credentials (valid ``session_ttl_seconds``).

        ``TooManyRequests`` while the account or ``source_ip`` waits after failed logins or is
        locked out: then the password is not even checked (see login_throttle.py)."""
        attempt = self._throttle.begin(email, source_ip)
        user = self._users.get(email)
        valid = self._hasher.verify(user.password_hash if user else self._dummy_hash, password)
        if not user or not valid:
            lockouts = attempt.failed()
            self._audit.record(AuditEventType.LOGIN_FAILED, email, source_ip, reason="wrong email or password")
            for lockout in lockouts:
                self._audit.record(AuditEventType.LOGIN_LOCKED_OUT, email, source_ip, scope=lockout.scope,
                                   seconds=lockout.seconds, failures=lockout.failures)
            raise Unauthenticated("wrong email or password")
        if user.is_banned:
            self._audit.record(AuditEventType.LOGIN_FAILED, email, source_ip, reason="banned")
            raise Unauthenticated(f"user {email!r} is banned")
        attempt.succeeded()
        self._audit.record(AuditEventType.LOGIN_SUCCEEDED, email, source_ip)
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
        digest = _digest(token)
        self._sessions.delete(digest)
        self._invalidate(lambda key, _: key == ("session", digest))
        return {"logged_out": True}

    def authenticate(self, bearer_token: Optional[str], api_key: Optional[str],
                     iam_principal: Optional[str] = None) -> User:
        """The user behind a session token, an API key or a verified IAM principal (the ARN
        API Gateway's IAM authorization puts in the request context, never a header); banned
        users are refused (in this process at once, elsewhere within the cache's lifetime: see
        the module docstring)."""
        if bearer_token:
            user = self._user_of_session(bearer_token)
        elif api_key:
            user = self._user_of_api_key(api_key)
        elif iam_principal:
            user = self._user_of_iam_principal(iam_principal)
        else:
            raise Unauthenticated("send 'Authorization: Bearer <session token>' or 'x-api-key: <key>', "
                                  "or sign the request with SigV4 through the stack's IAM API")
        if user.is_banned:
            raise Unauthenticated(f"user {user.email!r} is banned")
        return user

    def forget_user(self, email: str) -> None:
        """Drop the cached credentials of ``email`` (after a ban): its next request reads the store."""
        self._invalidate(lambda _, principal: principal.user.email == email)

    def _invalidate(self, predicate: Any) -> None:
        with self._epoch_lock:
            self._epoch += 1
            self._cache.pop_where(predicate)

    def _cached(self, key: tuple[str, str], now: datetime) -> Optional[_Principal]:
        principal = self._cache.get(key)
        if principal is None:
            return None
        if now >= principal.fresh_until or now + self._cache_ttl < principal.fresh_until:  # stale, or the clock went back
            self._cache.pop(key)
            return None
        return principal

    def _remember(self, key: tuple[str, str], epoch: int, user: User, now: datetime, **details: Any) -> None:
        if not self._cache_ttl or user.is_banned:
            return
        with self._epoch_lock:
            if epoch == self._epoch:  # no logout, revocation or ban since the lookup began
                self._cache.put(key, _Principal(user, now + self._cache_ttl, **details))

    def _user_of_session(self, token: str) -> User:
        digest, now, epoch = _digest(token), self._clock(), self._epoch
        principal = self._cached(("session", digest), now)
        if principal is not None and principal.session_expires_at is not None and now < principal.session_expires_at:
            return principal.user
        session = self._sessions.get_live(digest, now)
        if not session:
            self._cache.pop(("session", digest))
            raise Unauthenticated("the session token is invalid or has expired; log in again")
        user = self._users.get(session.user_email)
        if not user:
            raise Unauthenticated("the credentials belong to no user")
        self._remember(("session", digest), epoch, user, now, session_expires_at=session.expires_at)
        return user

    def _user_of_api_key(self, api_key: str) -> User:
        key_id, _, secret = api_key.removeprefix(API_KEY_PREFIX).partition(".")
        if not key_id or not secret:
            raise Unauthenticated("the API key is invalid or has been revoked")
        secret_hash, now, epoch = _digest(secret), self._clock(), self._epoch
        principal = self._cached(("api_key", key_id), now)
        if principal is not None and hmac.compare_digest(principal.secret_hash or "", secret_hash):
            return principal.user
        stored = self._api_keys.get(key_id)
        if not stored or not hmac.compare_digest(stored.secret_hash, secret_hash):
            raise Unauthenticated("the API key is invalid or has been revoked")
        user = self._users.get(stored.owner_email)
        if not user:
            raise Unauthenticated("the credentials belong to no user")
        self._remember(("api_key", key_id), epoch, user, now, secret_hash=stored.secret_hash)
        return user

    def _user_of_iam_principal(self, arn: str) -> User:
        try:
            principal = principal_of(arn)
        except InvalidInput as e:
            raise Unauthenticated(f"{arn} cannot act as a Kilele user: only IAM users and roles can be linked") from e
        now, epoch = self._clock(), self._epoch
        cached = self._cached(("iam", principal), now)
        if cached is not None:
            return cached.user
        user = self._users.get_by_iam_principal(principal)
        if not user:
            raise Unauthenticated(f"{principal} is linked to no Kilele user; an admin links it with "
                                  "`kilele users link-iam-principal <email> <arn>`")
        self._remember(("iam", principal), epoch, user, now)
        return user

    def create_api_key(self, actor: User, name: str, source_ip: Optional[str] = None) -> dict[str, Any]:
        """A new API key for ``actor``; the key itself is returned only this once."""
        require(actor, Action.MANAGE_API_KEYS)
        key_id = new_id().replace("-", "")
        secret = secrets.token_urlsafe(32)
        key = ApiKey(key_id, actor.email, name, _digest(secret), self._clock())
        self._api_keys.add(key)
        self._audit.record(AuditEventType.API_KEY_CREATED, actor.email, source_ip, key_id=key_id, name=name)
        return {**key.to_dict(), "key": f"{API_KEY_PREFIX}{key_id}.{secret}"}

    def list_api_keys(self, actor: User) -> list[dict[str, Any]]:
        require(actor, Action.MANAGE_API_KEYS)
        return [k.to_dict() for k in self._api_keys.list_by_owner(actor.email)]

    def revoke_api_key(self, actor: User, key_id: str, source_ip: Optional[str] = None) -> dict[str, Any]:
        require(actor, Action.MANAGE_API_KEYS)
        key = self._api_keys.get(key_id)
        if not key or key.owner_email != actor.email:
            raise NotFound(f"you have no API key {key_id!r}")
        self._api_keys.delete(key_id, actor.email)
        self._invalidate(lambda cached, _: cached == ("api_key", key_id))
        self._audit.record(AuditEventType.API_KEY_REVOKED, actor.email, source_ip, key_id=key_id, name=key.name)
        return {**key.to_dict(), "revoked": True}
