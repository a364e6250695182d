"""The ``kilele`` command: the SDK from a shell.

Every command prints its result as JSON on stdout. Errors print one line on stderr and exit 1.
``kilele login`` keeps the session token in ``~/.config/kilele/session.json`` (mode 0600), one
per API URL; later commands use it unless an API key is given (``--api-key`` / KILELE_API_KEY),
which then wins.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import click

from kilele.client import Client
from kilele.constants import ModelAccessRight, UserType
from kilele.errors import KileleError

DEFAULT_URL = "http://127.0.0.1:8000"
LOCAL_STACK_HINT = "the local stack needs the platform installed: pip install -r requirements-local.txt"


# ---------------------------------------------------------------------- session file


def session_path() -> Path:
    return Path.home() / ".config" / "kilele" / "session.json"


def _normalize_url(url: str) -> str:
    return url.strip().rstrip("/")


def _load_sessions() -> dict[str, Any]:
    path = session_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        click.echo(f"warning: ignoring unreadable {path}: {e}", err=True)
        return {}
    sessions = data.get("sessions") if isinstance(data, dict) else None
    return sessions if isinstance(sessions, dict) else {}


def _save_sessions(sessions: dict[str, Any]) -> None:
    """Write the session file atomically, readable by its owner only."""
    path = session_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".session.", suffix=".json")  # created 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"sessions": sessions}, f, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def saved_session(url: str) -> Optional[dict[str, Any]]:
    return _load_sessions().get(_normalize_url(url))


def save_session(url: str, session: dict[str, Any]) -> None:
    sessions = _load_sessions()
    sessions[_normalize_url(url)] = session
    _save_sessions(sessions)


def forget_session(url: str) -> bool:
    sessions = _load_sessions()
    if sessions.pop(_normalize_url(url), None) is None:
        return False
    _save_sessions(sessions)
    return True


# ---------------------------------------------------------------------- plumbing


class Context:
    def __init__(self, url: str, api_key: Optional[str]):
        self.url = _normalize_url(url)
        self.api_key = api_key or None

    def client(self, use_session: bool = True) -> Client:
        token = None
        if use_session and not self.api_key:
            session = saved_session(self.url)
            token = session.get("token") if session else None
        return Client(base_url=self.url, api_key=self.api_key, token=token)


def output(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


class KileleGroup(click.Group):
    """Turns SDK errors into one line on stderr and exit code 1 (no tracebacks)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KileleError as e:
            hint = ""
            if e.status_code == 401 and not (ctx.obj and ctx.obj.api_key):
                hint = " (log in with `kilele login EMAIL` or pass --api-key)"
            fail(f"{e}{hint}")
        except (ValueError, OSError) as e:
            fail(str(e))


pass_ctx = click.make_pass_decorator(Context)


@click.group(name="kilele", cls=KileleGroup)
@click.option("--url", envvar="KILELE_URL", default=DEFAULT_URL, show_default=True,
              help="API root URL (env KILELE_URL).")
@click.option("--api-key", envvar="KILELE_API_KEY", default=None,
              help="API key (env KILELE_API_KEY); wins over a saved login.")
@click.version_option(package_name="kilele")
@click.pass_context
def cli(ctx: click.Context, url: str, api_key: Optional[str]) -> None:
    """Kilele: serverless ML platform client."""
    ctx.obj = Context(url, api_key)


# ---------------------------------------------------------------------- sessions


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


# ---------------------------------------------------------------------- users


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


# ---------------------------------------------------------------------- API keys


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


# ---------------------------------------------------------------------- datasets


@cli.group()
def datasets() -> None:
    """Manage datasets."""


@datasets.command("create")
@click.argument("name")
@click.argument("task")
@click.option("--file", "file_path", type=click.Path(exists=True, dir_okay=False), help="Local dataset file.")
@click.option("--url", "dataset_url", help="URL the platform downloads the dataset from.")
@click.option("--target-column", help="Column to predict (tabular tasks).")
@pass_ctx
def datasets_create(obj: Context, name: str, task: str, file_path: Optional[str], dataset_url: Optional[str],
                    target_column: Optional[str]) -> None:
    """Create dataset NAME for TASK from --file or --url."""
    if (file_path is None) == (dataset_url is None):
        raise click.UsageError("give exactly one of --file and --url")
    output(obj.client().create_dataset(name, task, dataset_path=file_path, dataset_url=dataset_url,
                                       target_column=target_column))


@datasets.command("list")
@click.option("--task", help="Only datasets of this task.")
@pass_ctx
def datasets_list(obj: Context, task: Optional[str]) -> None:
    """List your datasets."""
    output(obj.client().get_datasets(task))


@datasets.command("get")
@click.argument("dataset_id")
@pass_ctx
def datasets_get(obj: Context, dataset_id: str) -> None:
    """Show one dataset."""
    output(obj.client().get_dataset(dataset_id))


# ---------------------------------------------------------------------- models


@cli.group()
def models() -> None:
    """Manage models."""


@models.command("create")
@click.argument("name")
@click.argument("task")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.argument("model_class")
@click.option("--dependency", "dependencies", multiple=True, metavar="NAME==VERSION",
              help="A PyPI dependency; repeat for several.")
@click.option("--public", is_flag=True, help="Make the model available to every user.")
@click.option("--docker-image", help="Custom worker image.")
@pass_ctx
def models_create(obj: Context, name: str, task: str, file: str, model_class: str, dependencies: tuple[str, ...],
                  public: bool, docker_image: Optional[str]) -> None:
    """Upload model NAME for TASK from the Python FILE defining MODEL_CLASS."""
    access = ModelAccessRight.PUBLIC if public else ModelAccessRight.PRIVATE
    output(obj.client().create_model(name, task, file, model_class, dependencies=list(dependencies),
                                     access_right=access, docker_image=docker_image))


@models.command("list")
@click.option("--task", help="Only models of this task.")
@pass_ctx
def models_list(obj: Context, task: Optional[str]) -> None:
    """List the models available to you."""
    output(obj.client().get_available_models(task))


@models.command("get")
@click.argument("model_id")
@pass_ctx
def models_get(obj: Context, model_id: str) -> None:
    """Show one model."""
    output(obj.client().get_model(model_id))


@models.command("download")
@click.argument("model_id")
@click.argument("out", type=click.Path(dir_okay=False, writable=True))
@pass_ctx
def models_download(obj: Context, model_id: str, out: str) -> None:
    """Save a model's Python file to OUT."""
    output(obj.client().download_model_file(model_id, out))


@models.command("delete")
@click.argument("model_id")
@pass_ctx
def models_delete(obj: Context, model_id: str) -> None:
    """Delete a model no train job uses."""
    output(obj.client().delete_model(model_id))


# ---------------------------------------------------------------------- local stack


@cli.group()
def local() -> None:
    """The platform on this machine (no AWS account needed)."""


@local.command("up")
@click.option("--port", default=8000, show_default=True, help="Port of the API.")
@click.option("--moto-port", default=0, show_default=True, help="Port of the emulated AWS (0: any free one).")
def local_up(port: int, moto_port: int) -> None:
    """Start the local stack (emulated AWS + API) and serve until interrupted."""
    try:
        from chalicelib.local import stack
    except ImportError as e:
        click.echo(LOCAL_STACK_HINT, err=True)
        click.echo(f"({e})", err=True)
        raise SystemExit(1)
    code = stack.main(port=port, moto_port=moto_port)
    raise SystemExit(code if isinstance(code, int) else 0)


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="kilele")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
