"""``kilele local …``: the platform on this machine, as a command group of the SDK's CLI.

The SDK does not import the platform; it finds this group through the entry-point group
``kilele.cli`` (registered in the root ``pyproject.toml``). Only click is imported here, so the
group loads even when the local stack's own dependencies (moto, chalice ...) are missing;
``kilele local up`` then says what to install. ``status`` and ``down`` find the running stack
through its data directory (``stack.json`` and the directory's lock, see data_dir.py).
"""
from __future__ import annotations

import os
import signal
import time

import click

LOCAL_STACK_HINT = "the local stack needs the platform installed: pip install -r requirements-local.txt"
DEFAULT_DATA_DIR = "~/.kilele/local"  # the same as chalicelib.local.stack's (not imported here: see above)

data_dir_option = click.option(
    "--data-dir", default=DEFAULT_DATA_DIR, show_default=True, type=click.Path(file_okay=False),
    help="Where the stack keeps its state (tables, objects, queues, state machines) between runs.",
)


@click.group()
def local() -> None:
    """The platform on this machine (no AWS account needed)."""


@local.command("up")
@click.option("--port", default=8000, show_default=True, help="Port of the API.")
@click.option("--moto-port", default=0, show_default=True, help="Port of the emulated AWS (0: any free one).")
@data_dir_option
@click.option("--reset", is_flag=True, help="Delete the saved state first and start empty.")
@click.option("--snapshot-seconds", default=2.0, show_default=True, type=click.FloatRange(min=0.1),
              help="How often the state is saved when it changed (a SIGKILL loses at most about this much).")
@click.option("--aws-endpoint-url", default="", help="An emulated AWS already running (LocalStack) instead of "
              "the stack's own moto: no AWS snapshots, no IAM-signed API calls (docs/localstack.md).")
@click.option("--dynamodb-endpoint-url", default="", help="DynamoDB's own endpoint (a moto server beside LocalStack).")
def local_up(port: int, moto_port: int, data_dir: str, reset: bool, snapshot_seconds: float,
             aws_endpoint_url: str, dynamodb_endpoint_url: str) -> None:
    """Start the local stack (emulated AWS + API) and serve until interrupted."""
    try:
        from chalicelib.local import stack
    except ImportError as e:
        click.echo(LOCAL_STACK_HINT, err=True)
        click.echo(f"({e})", err=True)
        raise SystemExit(1)
    code = stack.main(port=port, moto_port=moto_port, data_dir=data_dir, reset=reset,
                      snapshot_seconds=snapshot_seconds, aws_endpoint_url=aws_endpoint_url or None,
                      dynamodb_endpoint_url=dynamodb_endpoint_url or None)
    raise SystemExit(code if isinstance(code, int) else 0)


def _running(data_dir: str) -> dict:
    from chalicelib.local.data_dir import read_state

    return read_state(os.path.expanduser(data_dir)) or {}


@local.command("status")
@data_dir_option
def local_status(data_dir: str) -> None:
    """Show the running stack's components and their health (exit 1 if one is down, 3 if none runs)."""
    import requests

    state = _running(data_dir)
    if not state:
        click.echo(f"no local stack runs with data dir {data_dir}", err=True)
        raise SystemExit(3)
    click.echo(f"local stack (pid {state['pid']}) with data dir {state.get('data_dir')}")
    click.echo(f"  API:        {state.get('api_url')}\n  AWS (moto): {state.get('moto_url')}")
    try:
        response = requests.get(f"{state['api_url']}/", timeout=10)
        document = response.json()
    except (requests.RequestException, ValueError) as e:
        click.echo(f"  the API does not answer: {type(e).__name__}: {e}", err=True)
        raise SystemExit(1)
    components = document.get("components", {})
    width = max((len(name) for name in components), default=0)
    for name, health in components.items():
        mark = "ok  " if health.get("ok") else "DOWN"
        click.echo(f"  {name.ljust(width)}  {mark}  {health.get('detail', '')}")
    click.echo(f"status: {document.get('status')} (HTTP {response.status_code})")
    raise SystemExit(0 if response.status_code == 200 else 1)


@local.command("down")
@data_dir_option
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait for a clean stop.")
def local_down(data_dir: str, timeout: float) -> None:
    """Stop the running stack cleanly (its state is saved as it stops)."""
    from chalicelib.local.data_dir import is_locked

    state = _running(data_dir)
    if not state:
        click.echo(f"no local stack runs with data dir {data_dir}")
        return
    os.kill(int(state["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_locked(os.path.expanduser(data_dir)):
        if time.monotonic() > deadline:
            click.echo(f"the stack (pid {state['pid']}) did not stop within {timeout:g} s", err=True)
            raise SystemExit(1)
        time.sleep(0.2)
    click.echo(f"stopped the local stack (pid {state['pid']}); its state is in {state.get('data_dir')}")
