"""``kilele local …``: the platform on this machine, as a command group of the SDK's CLI.

The SDK does not import the platform; it finds this group through the entry-point group
``kilele.cli`` (registered in the root ``pyproject.toml``). Only click is imported here, so the
group loads even when the local stack's own dependencies (moto, chalice ...) are missing;
``kilele local up`` then says what to install.
"""
from __future__ import annotations

import click

LOCAL_STACK_HINT = "the local stack needs the platform installed: pip install -r requirements-local.txt"


@click.group()
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
