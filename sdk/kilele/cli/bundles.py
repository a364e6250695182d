"""``kilele bundle …``: export model bundles and serve them on this machine."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Optional

import click

from kilele.archive import safe_extract
from kilele.cli.core import Context, cli, fail, output, pass_ctx, version_option

BUNDLE_MANIFEST = "kilele-bundle.json"
SERVE_HINT = ("kilele-serve is not installed. As the bundle's README.md says, install the inference server with "
              "the bundle's requirements: pip install -r requirements.txt kilele-inference "
              "(requirements.txt is in the bundle: tar -xzf {path} requirements.txt)")


@cli.group()
def bundle() -> None:
    """Export model bundles and serve them on this machine."""


@bundle.command("export")
@click.argument("app")
@version_option
@click.option("--trial", "trial_id", help="Export only this COMPLETED trial (default: the best trial of each model).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True),
              help="Where to save the tar.gz (default: ./APP-vVERSION.tar.gz).")
@pass_ctx
def bundle_export(obj: Context, app: str, app_version: int, trial_id: Optional[str], out_path: Optional[str]) -> None:
    """Download a self-contained bundle of APP."""
    output(obj.client().export_bundle(app, app_version, trial_id=trial_id, out_path=out_path))


def _find_server() -> Optional[str]:
    """The ``kilele-serve`` executable: on PATH, or next to this Python (an unactivated venv)."""
    found = shutil.which("kilele-serve")
    if found:
        return found
    beside = Path(sys.executable).parent / "kilele-serve"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def _run_server(argv: list[str]) -> int:
    """Run the inference server until it exits (Ctrl-C reaches it too); its exit code."""
    process = subprocess.Popen(argv)
    try:
        return process.wait()
    except KeyboardInterrupt:
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


def _check_bundle(path: str) -> None:
    try:
        with tarfile.open(path, "r:gz") as archive:
            names = {name.removeprefix("./") for name in archive.getnames()}
    except (tarfile.TarError, OSError, EOFError) as e:
        fail(f"{path} is not a bundle tar.gz ({e})")
    if BUNDLE_MANIFEST not in names:
        fail(f"{path} is not a Kilele bundle: it has no {BUNDLE_MANIFEST}")


@bundle.command("serve")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="Port to serve on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
def bundle_serve(path: str, port: int, host: str) -> None:
    """Serve the bundle tar.gz at PATH with kilele-serve (POST /invocations, GET /ping)."""
    _check_bundle(path)
    server = _find_server()
    if server is None:
        fail(SERVE_HINT.format(path=path))
    directory = tempfile.mkdtemp(prefix="kilele-bundle-")
    try:
        try:
            with tarfile.open(path, "r:gz") as archive:
                safe_extract(archive, directory)  # no absolute paths, no escapes, no devices
        except (tarfile.TarError, OSError, EOFError) as e:
            fail(f"could not unpack {path}: {e}")
        click.echo(f"serving {path} (unpacked in {directory}) on http://{host}:{port}", err=True)
        code = _run_server([server, "--bundle", directory, "--host", host, "--port", str(port)])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    raise SystemExit(code)
