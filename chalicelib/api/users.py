"""Users: the current one, listing, creation and bans; the audit log of logins and API keys."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import Call, endpoint
from chalicelib.schemas import AuditEventsQuery, BanUserRequest, CreateUserRequest, IamPrincipalRequest
from chalicelib.schemas_responses import AuditEventsOut, UserOut
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/users/me", "GET", "The user making the request", response=UserOut)
def current_user(call: Call) -> dict:
    return call.user.to_dict()


@endpoint(bp, "/users", "GET", "List all users (admins)", response=list[UserOut])
def list_users(call: Call) -> list:
    return services().users.list_users(call.user)


@endpoint(bp, "/users", "POST", "Create a user (admins; admins only by a superadmin)", body=CreateUserRequest, status=201,
          response=UserOut)
def create_user(call: Call) -> dict:
    return services().users.create_user(call.user, call.body.email, call.body.password, call.body.user_type)


@endpoint(bp, "/users/ban", "POST", "Ban a user: logins, sessions and API keys stop working", body=BanUserRequest,
          response=UserOut)
def ban_user(call: Call) -> dict:
    return services().users.ban_user(call.user, call.body.email)


@endpoint(bp, "/users/iam-principals", "POST",
          "Link an IAM user or role to a user: its SigV4-signed requests through the stack's IAM API "
          "act as that user (admins)", body=IamPrincipalRequest, response=UserOut)
def link_iam_principal(call: Call) -> dict:
    return services().users.link_iam_principal(call.user, call.body.email, call.body.principal_arn)


@endpoint(bp, "/users/iam-principals/unlink", "POST", "Unlink an IAM user or role from a user (admins)",
          body=IamPrincipalRequest, response=UserOut)
def unlink_iam_principal(call: Call) -> dict:
    return services().users.unlink_iam_principal(call.user, call.body.email, call.body.principal_arn)


@endpoint(bp, "/audit-events", "GET", "Logins, lockouts and API key changes, newest first (admins; paged)",
          query=AuditEventsQuery, response=AuditEventsOut)
def audit_events(call: Call) -> dict:
    return services().audit.list_events(call.user, call.query.limit, call.query.page_token)
