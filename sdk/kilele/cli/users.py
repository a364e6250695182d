"""``kilele users …`` (admins)."""
from __future__ import annotations

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
