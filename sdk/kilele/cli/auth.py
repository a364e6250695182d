"""``kilele login``, ``logout``, ``whoami`` and ``kilele api-keys …``."""
from __future__ import annotations

import click

from kilele.cli.core import Context, cli, fail, output, pass_ctx
from kilele.cli.sessions import forget_session, save_session, saved_session
from kilele.client import Client


@cli.command()
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, envvar="KILELE_PASSWORD", help="Prompted when omitted.")
@pass_ctx
def login(obj: Context, email: str, password: str) -> None:
    """Log in and save the session token for this URL."""
    client = Client(base_url=obj.url)
    user = client.login(email, password)
    save_session(obj.url, {"token": client.token, "expires_at": client.token_expires_at, "email": user.get("email")})
    output(user)


@cli.command()
@pass_ctx
def logout(obj: Context) -> None:
    """Revoke the saved session token of this URL and forget it."""
    session = saved_session(obj.url)
    if not session or not session.get("token"):
        output({"logged_out": False, "reason": f"no saved login for {obj.url}"})
        return
    client = Client(base_url=obj.url, token=session["token"])
    try:
        result = client.logout()
    finally:
        forget_session(obj.url)
    output(result)


@cli.command()
@pass_ctx
def whoami(obj: Context) -> None:
    """The current user (from the saved login or the API key)."""
    user = obj.client().get_current_user()
    if user is None:
        fail(f"not logged in to {obj.url}: run `kilele login EMAIL` or pass --api-key")
    output(user)


@cli.group("api-keys")
def api_keys() -> None:
    """Manage your API keys."""


@api_keys.command("create")
@click.option("--name", default="default", show_default=True)
@pass_ctx
def api_keys_create(obj: Context, name: str) -> None:
    """Create an API key (the key is shown only once)."""
    output(obj.client().create_api_key(name))


@api_keys.command("list")
@pass_ctx
def api_keys_list(obj: Context) -> None:
    """List your API keys."""
    output(obj.client().get_api_keys())


@api_keys.command("revoke")
@click.argument("key_id")
@pass_ctx
def api_keys_revoke(obj: Context, key_id: str) -> None:
    """Revoke an API key by id."""
    output(obj.client().revoke_api_key(key_id))
