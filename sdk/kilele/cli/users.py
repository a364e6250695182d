"""``kilele users …`` (admins)."""
from __future__ import annotations

from typing import Optional

import click

from kilele.cli.core import Context, cli, output, pass_ctx
from kilele.constants import UserType


@cli.group()
def users() -> None:
    """Manage users (admins)."""


@users.command("list")
@pass_ctx
def users_list(obj: Context) -> None:
    """List all users."""
    output(obj.client().get_users())


@users.command("create")
@click.argument("email")
@click.argument("user_type", type=click.Choice([t.value for t in UserType if t is not UserType.SUPERADMIN],
                                               case_sensitive=False))
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="Prompted when omitted.")
@pass_ctx
def users_create(obj: Context, email: str, user_type: str, password: str) -> None:
    """Create a user of USER_TYPE."""
    output(obj.client().create_user(email, password, user_type))


@users.command("ban")
@click.argument("email")
@pass_ctx
def users_ban(obj: Context, email: str) -> None:
    """Ban a user (irreversible)."""
    output(obj.client().ban_user(email))


@users.command("link-iam-principal")
@click.argument("email")
@click.argument("principal_arn")
@pass_ctx
def users_link_iam_principal(obj: Context, email: str, principal_arn: str) -> None:
    """Let an IAM user or role (its ARN) sign requests as EMAIL through the stack's IAM API."""
    output(obj.client().link_iam_principal(email, principal_arn))


@users.command("unlink-iam-principal")
@click.argument("email")
@click.argument("principal_arn")
@pass_ctx
def users_unlink_iam_principal(obj: Context, email: str, principal_arn: str) -> None:
    """Stop an IAM user or role from signing requests as EMAIL."""
    output(obj.client().unlink_iam_principal(email, principal_arn))


@users.command("audit-events")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True, help="Events per page.")
@click.option("--page-token", default=None, help="The next_page_token of the previous page.")
@pass_ctx
def users_audit_events(obj: Context, limit: int, page_token: Optional[str]) -> None:
    """The audit log, newest first: logins, lockouts, API key changes (admins)."""
    output(obj.client().get_audit_events(limit=limit, page_token=page_token))
