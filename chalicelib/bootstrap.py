"""Seeds the superadmin of a deployed stage (the local stack does it on start).

    KILELE_STAGE=prod KILELE_SUPERADMIN_PASSWORD='...' python -m chalicelib.bootstrap

Uses the caller's AWS credentials and the stage's tables; an existing superadmin is left as it is.
The password must pass the password policy (the local stack's demo "kilele" is for loopback only).
"""
from __future__ import annotations

import sys
from typing import Optional

from chalicelib.errors import InvalidInput
from chalicelib.settings import Settings
from chalicelib.wiring import build


def main(settings: Optional[Settings] = None) -> int:
    settings = settings or Settings()
    if settings.superadmin_password == Settings.model_fields["superadmin_password"].default:
        print("refusing to seed a deployed stage with the default password: set KILELE_SUPERADMIN_PASSWORD",
              file=sys.stderr)
        return 2
    users = build(settings).users
    try:  # the seeded superadmin skips the API, not the password policy
        users.check_password(settings.superadmin_email, settings.superadmin_password)
    except InvalidInput as e:
        print(f"refusing to seed a deployed stage with a weak KILELE_SUPERADMIN_PASSWORD: {e.message}", file=sys.stderr)
        return 2
    user = users.ensure_superadmin(settings.superadmin_email, settings.superadmin_password)
    print(f"superadmin {user.email} of stage {settings.stage} is ready (created {user.created_at.isoformat()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
