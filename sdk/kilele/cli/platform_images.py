"""``kilele images …``: the platform's own worker and inference images (issue 13), admins only.
(Users' images are ``kilele managed-images``.)"""
from __future__ import annotations

import sys
from typing import Any

import click

from kilele.cli.core import Context, cli, output, pass_ctx

NAMES = ("worker", "worker-gpu", "inference", "inference-gpu")


@cli.group("images")
def images() -> None:
    """Build the platform's worker and inference images (AWS stacks; admins)."""


def _progress(answer: dict[str, Any]) -> None:
    line = ", ".join(f"{i['name']} {i['status']}" for i in answer["images"])
    click.echo(f"images: {line}", err=True)


@images.command("build")
@click.option("--image", "names", multiple=True, type=click.Choice(NAMES),
              help="Build this image only (repeatable; default: all four).")
@click.option("--wait/--no-wait", default=False, help="Wait until each is READY or FAILED, printing progress on stderr.")
@click.option("--poll-seconds", type=click.FloatRange(0.5, 600), default=20.0, show_default=True)
@pass_ctx
def build(obj: Context, names: tuple[str, ...], wait: bool, poll_seconds: float) -> None:
    """Build the worker and inference images (CPU and GPU) from containers/ at the content tags the
    stack's job definitions and SageMaker models run, with the stack's CodeBuild project. An image
    already built is not built again. Prints each image's status, tag, build id and log link;
    exits 1 if one FAILED. The local stack refuses (it runs no container images)."""
    answer = obj.client().build_platform_images(list(names) or None, wait=wait, poll_rate_sec=poll_seconds,
                                                show=_progress if wait else None)
    output(answer)
    if any(i["status"] == "FAILED" for i in answer["images"]):
        sys.exit(1)


@images.command("status")
@pass_ctx
def status(obj: Context) -> None:
    """Each platform image at the stack's content tag: READY, PENDING, BUILDING, FAILED or MISSING."""
    output(obj.client().get_platform_images())
