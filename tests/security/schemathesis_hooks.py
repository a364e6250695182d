"""Schemathesis hooks of test_schemathesis.py: the API's rules JSON Schema cannot state.

The check ``positive_data_acceptance`` sends requests the OpenAPI document allows and fails on
any refusal but the statuses schemathesis.toml expects. A few rules of the API cannot be put
in a JSON schema; for each, the positive cases that break it are left out here (only those: the
operation's other inputs are still checked), and the rule is checked by the platform's own code,
so this file cannot drift from the route:

- ``POST /users``: the password policy's strength score (zxcvbn), judged with the account's
  email; the document states the policy's minimum length (openapi.settings_limits).
- ``POST /queues/{name}/items``: each item's uri differs from the others' (JSON Schema's
  ``uniqueItems`` compares whole items, not one property).
- ``POST /managed-images``: each version specifier is one PEP 440 accepts (the document gives
  its shape; ``==abc`` has the shape but no version) and no library is named twice with different
  specifiers -- judged by the platform's own parser (chalicelib.entities.images).

Loaded by schemathesis (SCHEMATHESIS_HOOKS) in its own process, with the repository on the path.
"""
from __future__ import annotations

from typing import Any, Callable

import schemathesis

from chalicelib.adapters.passwords import ZxcvbnPasswordPolicy
from chalicelib.entities.images import PipRequirement, normalise
from chalicelib.errors import InvalidInput
from chalicelib.schemas import CreateUserRequest
from chalicelib.services.users import UserService
from chalicelib.settings import Settings

# The policy of the stack the test starts (the settings' defaults: it sets none of them).
_POLICY = ZxcvbnPasswordPolicy(Settings.model_fields["password_min_length"].default,
                               Settings.model_fields["password_min_score"].default)
_USERS = UserService(users=None, hasher=None, password_policy=_POLICY)  # check_password uses the policy only


def _strong_password(body: Any) -> bool:
    try:
        request = CreateUserRequest.model_validate(body)
    except (ValueError, InvalidInput):  # not what the schema says: keep it, the check judges it
        return True
    try:
        _USERS.check_password(request.email, request.password)
    except InvalidInput:
        return False
    return True


def _distinct_uris(body: Any) -> bool:
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return True
    uris = [item.get("uri") for item in items if isinstance(item, dict)]
    return len(uris) == len(set(map(repr, uris)))


def _valid_requirements(body: Any) -> bool:
    requirements = body.get("requirements") if isinstance(body, dict) else None
    if not isinstance(requirements, list) or not all(isinstance(r, dict) for r in requirements):
        return True
    try:
        normalise([PipRequirement.parse(r.get("name"), r.get("version_specifier")) for r in requirements])
    except InvalidInput:
        return False
    return True


RULES: dict[str, Callable[[Any], bool]] = {
    "POST /users": _strong_password,
    "POST /queues/{name}/items": _distinct_uris,
    "POST /managed-images": _valid_requirements,
}


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    """Leave out a positive case that breaks one of :data:`RULES` (negative cases stay)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return True
    rule = RULES.get(case.operation.label)
    return rule is None or rule(case.body)
