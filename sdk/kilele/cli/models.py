"""``kilele models …``."""
from __future__ import annotations

from typing import Optional

import click

from kilele.cli.core import Context, cli, output, pass_ctx
from kilele.constants import ModelAccessRight


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
