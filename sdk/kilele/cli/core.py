"""The root ``kilele`` group and what every command shares: the connection context, JSON
output, one-line errors, and the command groups other packages plug in (entry-point group
``kilele.cli``)."""
from __future__ import annotations

import importlib.metadata
import time
from typing import Any, Callable, Iterable, Optional

import click

from kilele.cli.render import render_json
from kilele.cli.sessions import _normalize_url, saved_session
from kilele.client import Client
from kilele.errors import KileleError

DEFAULT_URL = "http://127.0.0.1:8000"
LOCAL_STACK_HINT = "the local stack needs the platform installed: pip install -r requirements-local.txt"

#: Entry-point group of CLI plugins: each entry point is a click command or group, added to the
#: root group under the entry point's name (the platform adds ``kilele local`` this way).
PLUGIN_GROUP = "kilele.cli"
#: What to tell a user who calls a plugin's command when no installed package provides it.
PLUGIN_HINTS = {"local": LOCAL_STACK_HINT}


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
    click.echo(render_json(data))


def follow_log(fetch: Callable[[], tuple[str, bool]], poll_seconds: float = 2.0) -> None:
    """Print a log as it grows: ``fetch`` returns (the log so far, whether the run has ended);
    new text is printed at every poll, until the run ended and its last text is out. A log the
    platform cut (it keeps head and tail) is printed again from where the two no longer agree."""
    shown = ""
    while True:
        text, ended = fetch()
        if text.startswith(shown):
            new = text[len(shown):]
        else:
            new = "[... the log was cut; its stored head and tail follow ...]\n" + text
        if new:
            click.echo(new, nl=False)
        shown = text
        if ended:
            if shown and not shown.endswith("\n"):
                click.echo()
            return
        time.sleep(poll_seconds)


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


def _warn(message: str) -> None:
    click.echo("warning: " + " ".join(message.split()), err=True)


def _entry_points(group: str) -> Iterable[Any]:
    return importlib.metadata.entry_points(group=group)


def _missing_plugin(name: str, hint: str) -> click.Command:
    """A hidden stand-in for a plugin's command that is not installed: prints ``hint``, exits 1."""

    @click.command(name, hidden=True, add_help_option=False,
                   context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def missing() -> None:
        click.echo(hint, err=True)
        click.echo(f"(no installed package provides `kilele {name}`)", err=True)
        raise SystemExit(1)

    return missing


class KileleGroup(click.Group):
    """Turns SDK errors into one line on stderr and exit code 1 (no tracebacks).

    With ``plugin_group``, also adds the commands of that entry-point group the first time a
    command is looked up or listed; a plugin that fails to load costs a one-line warning on
    stderr, never the rest of the CLI.
    """

    def __init__(self, *args: Any, plugin_group: Optional[str] = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.plugin_group = plugin_group
        self._plugins_loaded = plugin_group is None

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

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_plugins()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        self.load_plugins()
        command = super().get_command(ctx, cmd_name)
        if command is None and self.plugin_group is not None and cmd_name in PLUGIN_HINTS:
            return _missing_plugin(cmd_name, PLUGIN_HINTS[cmd_name])
        return command

    def load_plugins(self) -> None:
        """Add the commands of the entry-point group (once)."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        assert self.plugin_group is not None
        try:
            found = list(_entry_points(self.plugin_group))
        except Exception as e:  # noqa: BLE001 (broken package metadata must not break the CLI)
            _warn(f"could not list the {self.plugin_group} plugins: {type(e).__name__}: {e}")
            return
        for entry_point in found:
            where = f"the {self.plugin_group} plugin {entry_point.name!r} ({entry_point.value})"
            if entry_point.name in self.commands:
                _warn(f"ignoring {where}: `kilele {entry_point.name}` is taken")
                continue
            try:
                command = entry_point.load()
                if not isinstance(command, click.Command):
                    raise TypeError(f"{type(command).__name__} is not a click command")
            except Exception as e:  # noqa: BLE001 (a plugin's own bug, whatever it is)
                _warn(f"ignoring {where}: {type(e).__name__}: {e}")
                continue
            self.add_command(command, name=entry_point.name)


pass_ctx = click.make_pass_decorator(Context)

version_option = click.option("--version", "app_version", type=int, default=-1, show_default=True,
                              help="App version (-1: the latest).")


@click.group(name="kilele", cls=KileleGroup, plugin_group=PLUGIN_GROUP)
@click.option("--url", envvar="KILELE_URL", default=DEFAULT_URL, show_default=True,
              help="API root URL (env KILELE_URL).")
@click.option("--api-key", envvar="KILELE_API_KEY", default=None,
              help="API key (env KILELE_API_KEY); wins over a saved login.")
@click.version_option(package_name="kilele")
@click.pass_context
def cli(ctx: click.Context, url: str, api_key: Optional[str]) -> None:
    """Kilele: serverless ML platform client."""
    ctx.obj = Context(url, api_key)
