"""infra/README.md's walkthrough (an empty account to a first prediction) names only what exists:
the stack outputs it reads, the resource names it points to in the console, the CLI commands,
the SDK methods and the settings it mentions. A rename anywhere makes this fail, so the
walkthrough an operator follows cannot drift from the code it describes."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import pytest
from stack_template import whole_stack

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "infra")]

from aws_cdk.assertions import Template  # noqa: E402

from chalicelib.settings import Settings  # noqa: E402
from kilele import Client  # noqa: E402
from kilele.cli import cli  # noqa: E402

STAGE = "prod"  # the walkthrough's stage; names are checked as the stack makes them for it


def walkthrough() -> str:
    text = (ROOT / "infra" / "README.md").read_text()
    start = text.index("## From an empty account to a first prediction")
    return text[start:text.index("\n## ", start + 3)]


@pytest.fixture(scope="module")
def template() -> Template:
    return whole_stack(STAGE)  # one synthesis per test process (stack_template.py)


def test_the_outputs_it_reads_exist(template):
    outputs = set(template.to_json()["Outputs"])
    named = set(re.findall(r"\bout (\w+)\)", walkthrough())) | set(re.findall(r"`(\w+(?:Url|Name))`", walkthrough()))
    assert {"DataBucketName", "ApiUrl", "IamApiUrl"} <= named, named
    assert named <= outputs, f"the walkthrough reads outputs the stack does not have: {sorted(named - outputs)}"


def test_the_resources_it_points_to_exist_under_those_names(template):
    names = set()
    for resource in template.to_json()["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("StateMachineName", "DashboardName", "Name"):
            if isinstance(props.get(key), str):
                names.add(props[key])
    pointed = set(re.findall(rf"`(kilele-{STAGE}(?:-[a-z]+)*)`", walkthrough())) - {f"kilele-{STAGE}"}
    assert {f"kilele-{STAGE}-images", f"kilele-{STAGE}-train-worker"} <= pointed, pointed
    assert pointed <= names, f"no resource is named {sorted(pointed - names)}"
    assert f"kilele-{STAGE}" in names, "the dashboard the walkthrough names"


def _command(words: list[str]) -> list[str]:
    """The longest prefix of ``words`` that is a command of the CLI."""
    group, found = cli, []
    for word in words:
        if not isinstance(group, click.Group) or word not in group.commands:
            break
        group = group.commands[word]
        found.append(word)
    return found


def test_the_cli_commands_it_names_exist():
    mentioned = re.findall(r"`kilele ([a-z][a-z -]*)", walkthrough().replace("\n", " "))
    assert len(mentioned) >= 4, mentioned
    for words in mentioned:
        words = words.split()
        assert len(_command(words)) >= 2, f"`kilele {' '.join(words)}` is no command of the CLI"


def test_the_sdk_calls_it_makes_exist():
    code = "\n".join(re.findall(r"```python\n(.*?)```", walkthrough(), re.S))
    calls = set(re.findall(r"\b(?:admin|ds|Client)\.(\w+)\(", code))
    assert {"from_stack", "create_train_job", "create_inference_job", "predict", "stop_inference_job"} <= calls
    missing = sorted(name for name in calls if not callable(getattr(Client, name, None)))
    assert not missing, f"the walkthrough calls SDK methods that do not exist: {missing}"


def test_the_settings_it_mentions_exist():
    mentioned = set(re.findall(r"`(KILELE_[A-Z_]+)`", walkthrough()))
    assert mentioned, "the walkthrough names the settings an operator may change"
    fields = {f"KILELE_{name.upper()}" for name in Settings.model_fields}
    assert mentioned <= fields, f"no such setting: {sorted(mentioned - fields)}"
