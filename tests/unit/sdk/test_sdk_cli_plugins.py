"""Command groups from other packages (entry-point group ``kilele.cli``): added to the root group,
a broken one costs a one-line warning and nothing else; ``kilele local`` comes from the platform."""
from __future__ import annotations

import importlib.metadata

import click
import pytest
from click.testing import CliRunner

from kilele.cli import LOCAL_STACK_HINT, PLUGIN_GROUP, cli
from kilele.cli import core as cli_core
from kilele.cli.core import KileleGroup


class FakeEntryPoint:
    def __init__(self, name: str, target=None, error: Exception | None = None):
        self.name = name
        self.value = f"fake_plugins:{name}"
        self.group = PLUGIN_GROUP
        self._target, self._error = target, error

    def load(self):
        if self._error is not None:
            raise self._error
        return self._target


@click.group()
def hello() -> None:
    """Say hello."""


@hello.command("world")
def hello_world() -> None:
    """Print hello world."""
    click.echo("hello world")


def make_root(monkeypatch, *entry_points: FakeEntryPoint) -> click.Group:
    """A fresh root group (the real one keeps what it loaded) with a built-in ``ping``."""
    asked = []

    def fake_entry_points(group):
        asked.append(group)
        return list(entry_points)

    monkeypatch.setattr(cli_core, "_entry_points", fake_entry_points)

    @click.group(cls=KileleGroup, plugin_group=PLUGIN_GROUP)
    def root() -> None:
        """Root."""

    @root.command()
    def ping() -> None:
        click.echo("pong")

    root.asked = asked  # type: ignore[attr-defined]
    return root


def test_a_plugin_group_becomes_a_command_under_its_entry_point_name(monkeypatch):
    root = make_root(monkeypatch, FakeEntryPoint("greet", hello))
    result = CliRunner().invoke(root, ["greet", "world"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello world\n"
    assert "greet" in CliRunner().invoke(root, ["--help"]).stdout
    assert root.asked == [PLUGIN_GROUP]  # listed once, however often commands are looked up


@pytest.mark.parametrize("broken", [
    FakeEntryPoint("bad", error=ImportError("No module named 'nowhere'\n(second line)")),
    FakeEntryPoint("bad", error=RuntimeError("the plugin crashed while importing")),
    FakeEntryPoint("bad", target=lambda: None),  # not a click command
    FakeEntryPoint("ping", hello),  # takes a built-in command's name
])
def test_a_broken_plugin_warns_in_one_line_and_the_rest_works(monkeypatch, broken):
    root = make_root(monkeypatch, broken, FakeEntryPoint("greet", hello))
    result = CliRunner().invoke(root, ["ping"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "pong\n"
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1
    assert warnings[0].startswith(f"warning: ignoring the {PLUGIN_GROUP} plugin {broken.name!r} ")
    assert CliRunner().invoke(root, ["greet", "world"]).stdout == "hello world\n"
    assert CliRunner().invoke(root, ["ping"]).stdout == "pong\n"


def test_an_unreadable_plugin_list_warns_and_the_cli_works(monkeypatch):
    root = make_root(monkeypatch)

    def broken_metadata(group):
        raise ValueError("bad METADATA")

    monkeypatch.setattr(cli_core, "_entry_points", broken_metadata)
    result = CliRunner().invoke(root, ["ping"])
    assert result.exit_code == 0
    assert result.stdout == "pong\n"
    assert result.stderr == f"warning: could not list the {PLUGIN_GROUP} plugins: ValueError: bad METADATA\n"


def test_local_without_the_platform_prints_the_hint(monkeypatch):
    root = make_root(monkeypatch)  # no package provides `local`
    result = CliRunner().invoke(root, ["local", "up", "--port", "8123"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == LOCAL_STACK_HINT
    assert "local" not in CliRunner().invoke(root, ["--help"]).stdout


def test_the_platform_registers_local_through_the_entry_point():
    """The root package (installed in the dev venv) provides ``kilele local``."""
    found = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP)}
    assert found.get("local") == "chalicelib.local.cli:local"
    runner = CliRunner()
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0 and "local" in result.stdout and result.stderr == ""
    result = runner.invoke(cli, ["local", "up", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.stdout and "--moto-port" in result.stdout


def test_the_platform_plugin_prints_the_same_hint_as_the_sdk():
    from chalicelib.local import cli as local_cli

    assert local_cli.LOCAL_STACK_HINT == LOCAL_STACK_HINT
