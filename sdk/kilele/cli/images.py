"""``kilele managed-images …`` (seed 002's managed images: pip requirements built once)."""
from __future__ import annotations

import sys
import click

from kilele.cli.core import Context, cli, output, pass_ctx
from kilele.images import PipLibraryFilter, PipRequirement

_OPERATORS = ("===", "~=", "==", "!=", "<=", ">=", "<", ">")


def _requirement(text: str) -> PipRequirement:
    """``six``, ``six==1.16.0``, ``numpy>=1.26,<2``: the name, then the specifier as written."""
    positions = [text.find(op) for op in _OPERATORS if op in text]
    if not positions:
        return PipRequirement(text.strip())
    cut = min(positions)
    return PipRequirement(text[:cut].strip(), text[cut:].strip())


def _filter(text: str) -> PipLibraryFilter:
    name, _, version = text.partition("==")
    return PipLibraryFilter(name.strip(), version.strip() or None)


@cli.group("managed-images")
def managed_images() -> None:
    """Build and find managed images (pip requirements over the worker or inference runtime)."""


@managed_images.command("create")
@click.argument("name")
@click.option("--requirement", "-r", "requirements", multiple=True,
              help="A pip requirement (repeatable): six, six==1.16.0, numpy>=1.26,<2.")
@click.option("--base", type=click.Choice(["worker", "inference"]), default="worker", show_default=True,
              help="The runtime the image is layered on.")
@click.option("--wait/--no-wait", default=False, help="Wait until READY or FAILED, printing progress on stderr.")
@pass_ctx
def create(obj: Context, name: str, requirements: tuple[str, ...], base: str, wait: bool) -> None:
    """Create managed image NAME; with --wait, exit 1 if its build FAILED (the log on stderr)."""
    builder = obj.client().create_managed_image(name, [_requirement(r) for r in requirements], base=base)
    if wait:
        _wait(builder)
    output(builder.refresh())
    if builder.info.get("status") == "FAILED":
        sys.exit(1)


def _wait(builder) -> None:  # noqa: ANN001 - kilele.images.ImageBuilder
    stdout = sys.stdout
    sys.stdout = sys.stderr  # get_status(verbose) prints; stdout stays the JSON result
    try:
        builder.get_status(verbose=True, wait_until_finish=True, poll_rate_sec=2.0)
    finally:
        sys.stdout = stdout


@managed_images.command("list")
@click.option("--pip-library", "libraries", multiple=True,
              help="Only images with this library installed (repeatable, intersected): name or name==version.")
@click.option("--page-token", default="", help="The next_page_token of the previous page.")
@click.option("--page-size", type=click.IntRange(1, 100), default=100, show_default=True)
@pass_ctx
def list_images(obj: Context, libraries: tuple[str, ...], page_token: str, page_size: int) -> None:
    """List managed images in name order: {"images": [...], "next_page_token": "..."}."""
    images, token = obj.client().list_managed_images([_filter(f) for f in libraries] or None, page_token, page_size)
    output({"images": images, "next_page_token": token})


@managed_images.command("show")
@click.argument("name")
@click.option("--wait/--no-wait", default=False, help="Wait until READY or FAILED first.")
@pass_ctx
def show(obj: Context, name: str, wait: bool) -> None:
    """Show managed image NAME (its status; once READY, what is installed)."""
    builder = obj.client().get_image_builder(name)
    if wait:
        _wait(builder)
    output(builder.refresh())


@managed_images.command("logs")
@click.argument("name")
@pass_ctx
def logs(obj: Context, name: str) -> None:
    """Print the build log of managed image NAME."""
    click.echo(obj.client().get_image_builder(name).get_logs(), nl=False)


@managed_images.command("delete")
@click.argument("name")
@pass_ctx
def delete(obj: Context, name: str) -> None:
    """Delete managed image NAME (yours; refused while a job uses it)."""
    output(obj.client().delete_managed_image(name))


__all__ = ["managed_images"]
