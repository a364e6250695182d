"""Login sessions and API keys."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import Call, endpoint
from chalicelib.schemas import CreateApiKeyRequest, LoginRequest
from chalicelib.schemas_responses import ApiKeyOut, CreatedApiKeyOut, LoggedOutOut, RevokedApiKeyOut, SessionOut
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/tokens", "POST", "Log in: a session token valid for one hour (429 with Retry-After after repeated failures)", body=LoginRequest, public=True,
          response=SessionOut)
def login(call: Call) -> dict:
    return services().auth.login(call.body.email, call.body.password, call.source_ip)


@endpoint(bp, "/tokens/current", "DELETE", "Log out: revoke the session token of this request",
          response=LoggedOutOut)
def logout(call: Call) -> dict:
    return services().auth.logout(call.bearer_token)


@endpoint(bp, "/api-keys", "POST", "Create an API key (shown only in this answer)", body=CreateApiKeyRequest, status=201,
          response=CreatedApiKeyOut)
def create_api_key(call: Call) -> dict:
    return services().auth.create_api_key(call.user, call.body.name, call.source_ip)


@endpoint(bp, "/api-keys", "GET", "List your API keys (without the keys)", response=list[ApiKeyOut])
def list_api_keys(call: Call) -> list:
    return services().auth.list_api_keys(call.user)


@endpoint(bp, "/api-keys/{key_id}", "DELETE", "Revoke one of your API keys", response=RevokedApiKeyOut)
def revoke_api_key(call: Call, key_id: str) -> dict:
    return services().auth.revoke_api_key(call.user, key_id, call.source_ip)
