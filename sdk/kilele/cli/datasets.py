"""``kilele datasets …``."""
from __future__ import annotations

from typing import Optional

import click

from kilele.cli.core import Context, cli, output, pass_ctx


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
